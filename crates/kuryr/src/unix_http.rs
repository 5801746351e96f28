//! One HTTP request over a unix socket, for the admin socket's client and Docker's API.
//! HTTP/1.0, so that the server closes the connection after the answer and never sends a
//! chunked body: the answer is everything until EOF.

use std::path::Path;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

/// Answers larger than this are refused (Docker's network list on a big host is far smaller).
const MAX_ANSWER: u64 = 64 << 20;

/// Sends `method path` with `body` (JSON, possibly empty); the status and body of the answer.
///
/// # Errors
/// The socket cannot be reached, the exchange broke, or the answer is not HTTP.
pub async fn request(
    socket: &Path,
    method: &str,
    path: &str,
    body: &[u8],
) -> std::io::Result<(u16, Vec<u8>)> {
    let mut stream = UnixStream::connect(socket).await?;
    let head = format!(
        "{method} {path} HTTP/1.0\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body).await?;
    let mut answer = Vec::new();
    stream.take(MAX_ANSWER).read_to_end(&mut answer).await?;
    let (status, body) = split_response(&answer).map_err(std::io::Error::other)?;
    Ok((status, body.to_vec()))
}

/// Status code and body of an HTTP answer read to its end.
fn split_response(raw: &[u8]) -> Result<(u16, &[u8]), &'static str> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("the answer has no HTTP header")?;
    let head = String::from_utf8_lossy(&raw[..end]);
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or("the answer has no status")?;
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
