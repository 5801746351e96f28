//! The client side of the admin socket, for `kuryr pool`, `kuryr stats` and `kuryr gc`.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::AdminError;
use crate::unix_http;

/// Send `method path` with an optional JSON body; the JSON answer, or the daemon's error.
pub async fn call<B: Serialize, T: DeserializeOwned>(
    socket: &Path,
    method: &str,
    path: &str,
    body: Option<&B>,
) -> Result<T, String> {
    let body = match body {
        Some(b) => serde_json::to_vec(b).map_err(|e| format!("encoding the request: {e}"))?,
        None => Vec::new(),
    };
    let (status, body) = unix_http::request(socket, method, path, &body)
        .await
        .map_err(|e| {
            format!(
                "cannot reach the kuryr daemon on {}: {e}; is `kuryr serve` running (as root), \
                 with this admin socket ([pool_manager] sock_file, --admin-socket)?",
                socket.display()
            )
        })?;
    if (200..300).contains(&status) {
        serde_json::from_slice(&body).map_err(|e| format!("the daemon's answer: {e}"))
    } else {
        let message = serde_json::from_slice::<AdminError>(&body)
            .map(|e| e.error)
            .unwrap_or_else(|_| String::from_utf8_lossy(&body).into_owned());
        Err(message)
    }
}
