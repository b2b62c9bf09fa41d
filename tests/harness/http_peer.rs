//! The far side of a task's HTTP requests: what tests that serve HTTP on
//! 127.0.0.1 for an operator to reach read from each connection.

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// How a connection to a test server opened.
pub enum Opening {
    /// A request's head (request line and headers), as text.
    Head(String),
    /// A TLS handshake: the client wanted https from a plain server.
    Tls,
    /// Closed (or failed) before a whole head arrived.
    Closed,
}

/// Reads the head of the first request on `stream`.
pub async fn read_head(stream: &mut TcpStream) -> Opening {
    let mut head = Vec::new();
    let mut chunk = [0_u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return Opening::Closed,
            Ok(n) => head.extend_from_slice(&chunk[..n]),
        }
        // A TLS record of type handshake.
        if head.first() == Some(&0x16) {
            return Opening::Tls;
        }
    }
    Opening::Head(String::from_utf8_lossy(&head).into_owned())
}
