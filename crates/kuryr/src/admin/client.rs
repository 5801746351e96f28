//! The client side of the admin socket, for `kuryr pool` and `kuryr stats`: one HTTP/1.1
//! request per connection (`Connection: close`), so the answer is everything until EOF.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use super::AdminError;

/// Send `method path` with an optional JSON body; the JSON answer, or the daemon's error.
pub async fn call<B: Serialize, T: DeserializeOwned>(
    socket: &Path,
    method: &str,
    path: &str,
    body: Option<&B>,
) -> Result<T, String> {
    let mut stream = UnixStream::connect(socket).await.map_err(|e| {
        format!(
            "cannot reach the kuryr daemon on {}: {e}; is `kuryr serve` running (as root), \
             with this admin socket ([pool_manager] sock_file, --admin-socket)?",
            socket.display()
        )
    })?;
    let body = match body {
        Some(b) => serde_json::to_vec(b).map_err(|e| format!("encoding the request: {e}"))?,
        None => Vec::new(),
    };
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: kuryr\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream
        .write_all(head.as_bytes())
        .await
        .and(stream.write_all(&body).await)
        .map_err(|e| format!("sending to {}: {e}", socket.display()))?;
    let mut answer = Vec::new();
    stream
        .read_to_end(&mut answer)
        .await
        .map_err(|e| format!("reading from {}: {e}", socket.display()))?;
    let (status, body) = split_response(&answer)?;
    if (200..300).contains(&status) {
        serde_json::from_slice(body).map_err(|e| format!("the daemon's answer: {e}"))
    } else {
        let message = serde_json::from_slice::<AdminError>(body)
            .map(|e| e.error)
            .unwrap_or_else(|_| String::from_utf8_lossy(body).into_owned());
        Err(message)
    }
}

/// Status code and body of an HTTP/1.1 answer with a Content-Length body.
fn split_response(raw: &[u8]) -> Result<(u16, &[u8]), String> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("the daemon's answer has no HTTP header")?;
    let head = String::from_utf8_lossy(&raw[..end]);
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or("the daemon's answer has no status")?;
    Ok((status, &raw[end + 4..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_split_into_status_and_body() {
        let raw = b"HTTP/1.1 404 Not Found\r\ncontent-length: 2\r\n\r\n{}";
        assert_eq!(split_response(raw), Ok((404, &b"{}"[..])));
        assert!(split_response(b"garbage").is_err());
    }
}
