//! Newline-delimited JSON over a streaming HTTP body: the framing of every watch in kube-lite.

use bytes::{Buf, BytesMut};
use futures::{Stream, StreamExt};
use serde::de::DeserializeOwned;

/// Turn a response body into a stream of decoded lines. A line that fails to decode ends the
/// stream with an error; a body that ends mid-line is an error too (the watch was cut).
pub fn decode<T, S, E>(body: S) -> impl Stream<Item = Result<T, NdjsonError>> + Send
where
    T: DeserializeOwned + Send + 'static,
    S: Stream<Item = Result<bytes::Bytes, E>> + Send + 'static,
    E: std::fmt::Display + Send + 'static,
{
    async_stream::stream! {
        let mut buf = BytesMut::new();
        futures::pin_mut!(body);
        loop {
            while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                let line = buf.split_to(pos + 1);
                let line = &line[..pos];
                if line.iter().all(|b| b.is_ascii_whitespace()) {
                    continue;
                }
                match serde_json::from_slice::<T>(line) {
                    Ok(v) => yield Ok(v),
                    Err(e) => {
                        yield Err(NdjsonError::Decode(e.to_string()));
                        return;
                    }
                }
            }
            match body.next().await {
                Some(Ok(chunk)) => buf.extend_from_slice(chunk.chunk()),
                Some(Err(e)) => {
                    yield Err(NdjsonError::Transport(e.to_string()));
                    return;
                }
                None => {
                    if !buf.iter().all(|b| b.is_ascii_whitespace()) {
                        match serde_json::from_slice::<T>(&buf) {
                            Ok(v) => yield Ok(v),
                            Err(_) => yield Err(NdjsonError::Transport("stream ended mid-message".into())),
                        }
                    }
                    return;
                }
            }
        }
    }
}

#[derive(Debug, thiserror::Error, Clone)]
pub enum NdjsonError {
    #[error("failed to decode watch event: {0}")]
    Decode(String),
    #[error("watch stream broken: {0}")]
    Transport(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn splits_lines_across_chunks() {
        let chunks: Vec<Result<bytes::Bytes, String>> = vec![
            Ok("{\"a\":1}\n{\"a\"".into()),
            Ok(":2}\n\n{\"a\":3}".into()),
        ];
        let out: Vec<_> = decode::<serde_json::Value, _, _>(futures::stream::iter(chunks))
            .collect()
            .await;
        let vals: Vec<i64> = out
            .into_iter()
            .map(|r| r.unwrap()["a"].as_i64().unwrap())
            .collect();
        assert_eq!(vals, vec![1, 2, 3]);
    }
}
