//! The append benchmark's load generator: one keep-alive HTTP/1.1 connection per client, the
//! request encoded once and written whole, each answer parsed only for its status and length.
//!
//! The benchmark's client shares the machine's two cores with the server and PostgreSQL, so
//! whatever it spends per command is taken from them. A general-purpose client (reqwest:
//! building the request, serializing its JSON, header maps, a connection pool) spent more CPU
//! per command than the server's own HTTP layer did; load generators such as wrk are built this
//! way for the same reason. What the server sees is an ordinary HTTP/1.1 request.

use std::net::SocketAddr;

use anyhow::Context as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// An encoded `POST` with a JSON body and a bearer token, ready to be written as it is.
pub(crate) fn encode_post(address: SocketAddr, path: &str, token: &str, body: &[u8]) -> Vec<u8> {
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nhost: {address}\r\nauthorization: Bearer {token}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    request
}

/// One client's connection to the server.
pub(crate) struct KeepAliveConnection {
    stream: TcpStream,
    /// Bytes read and not yet consumed; reused for every answer.
    buffer: Vec<u8>,
}

impl KeepAliveConnection {
    pub(crate) async fn connect(address: SocketAddr) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(address).await?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            buffer: Vec::with_capacity(4096),
        })
    }

    /// Writes `request` and reads its whole answer; returns the status code.
    pub(crate) async fn send(&mut self, request: &[u8]) -> anyhow::Result<u16> {
        self.stream.write_all(request).await?;
        loop {
            if let Some((status, length)) = parse_answer(&self.buffer)? {
                if self.buffer.len() >= length {
                    self.buffer.drain(..length);
                    return Ok(status);
                }
            }
            self.buffer.reserve(4096);
            let read = self.stream.read_buf(&mut self.buffer).await?;
            anyhow::ensure!(read > 0, "the server closed the connection");
        }
    }
}

/// The status and the whole length (head and body) of the answer at the start of `bytes`, once
/// its head is complete.
fn parse_answer(bytes: &[u8]) -> anyhow::Result<Option<(u16, usize)>> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut answer = httparse::Response::new(&mut headers);
    let httparse::Status::Complete(head) = answer.parse(bytes)? else {
        return Ok(None);
    };
    let status = answer.code.context("an answer without a status")?;
    let mut body = None;
    for header in answer.headers.iter() {
        if header.name.eq_ignore_ascii_case("content-length") {
            body = Some(std::str::from_utf8(header.value)?.trim().parse::<usize>()?);
        }
        // Any other framing would need a real client: say so rather than misread it.
        anyhow::ensure!(
            !header.name.eq_ignore_ascii_case("transfer-encoding"),
            "a chunked answer"
        );
        anyhow::ensure!(
            !(header.name.eq_ignore_ascii_case("connection")
                && header.value.eq_ignore_ascii_case(b"close")),
            "the server is closing the connection"
        );
    }
    let body = body.context("an answer without content-length")?;
    Ok(Some((status, head + body)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_is_whole_once_its_body_is() {
        let answer = b"HTTP/1.1 201 Created\r\ncontent-type: application/json\r\n\
                       content-length: 2\r\n\r\n{}HTTP/1.1 200";
        assert_eq!(parse_answer(&answer[..20]).unwrap(), None);
        let whole = answer.len() - "HTTP/1.1 200".len();
        assert_eq!(parse_answer(answer).unwrap(), Some((201, whole)));
    }

    #[test]
    fn other_framing_is_refused() {
        let chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n";
        assert!(parse_answer(chunked).is_err());
        let closing = b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 0\r\n\r\n";
        assert!(parse_answer(closing).is_err());
        let unframed = b"HTTP/1.1 200 OK\r\n\r\n";
        assert!(parse_answer(unframed).is_err());
    }

    #[tokio::test]
    async fn a_request_reaches_a_server_whole_and_its_answers_are_read_in_turn() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let request = encode_post(address, "/v1/commands", "tkn", br#"{"a":1}"#);
        let expected = request.clone();
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            for status in [201, 409] {
                let mut received = vec![0; expected.len()];
                socket.read_exact(&mut received).await.unwrap();
                assert_eq!(received, expected);
                // The answer arrives in two writes, the body split from the head.
                let head = format!("HTTP/1.1 {status} X\r\ncontent-length: 5\r\n\r\nab");
                socket.write_all(head.as_bytes()).await.unwrap();
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                socket.write_all(b"cde").await.unwrap();
            }
        });
        let mut connection = KeepAliveConnection::connect(address).await.unwrap();
        assert_eq!(connection.send(&request).await.unwrap(), 201);
        assert_eq!(connection.send(&request).await.unwrap(), 409);
        server.await.unwrap();
        let text = String::from_utf8(request).unwrap();
        assert!(text.starts_with("POST /v1/commands HTTP/1.1\r\n"));
        assert!(text.contains("\r\nauthorization: Bearer tkn\r\n"));
        assert!(text.ends_with("\r\ncontent-length: 7\r\n\r\n{\"a\":1}"));
    }
}
