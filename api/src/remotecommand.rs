//! Kubernetes' remote command protocol (`kubectl exec`) over WebSocket, as pure functions: what
//! the kubelet's `/exec` endpoint reads and writes, and what a client (kubectl-lite) reads and
//! writes. No I/O here — the kubelet's session glue and the clients own the sockets.
//!
//! After apimachinery's `util/remotecommand` and `util/httpstream/wsstream`, and client-go's
//! `tools/remotecommand/{websocket,v4,v5}.go`:
//!
//! - The WebSocket subprotocols `v5.channel.k8s.io` (what kubectl 1.30+ asks for) and
//!   `v4.channel.k8s.io` (older clients, the Python client). Every message is binary; its first
//!   byte is the channel: 0 stdin, 1 stdout, 2 stderr, 3 error, 4 resize; the rest is the data.
//! - The error channel carries one `metav1.Status` at the end of the command: `Success`, or
//!   `Failure` with reason `NonZeroExitCode` and a cause `{reason: ExitCode, message: "<n>"}`,
//!   or any other failure (its message is the error).
//! - The resize channel carries `{"Width":W,"Height":H}` (client-go's `TerminalSize`).
//! - v5 adds channel 255: `[255, n]` says the client closed stream `n` (stdin at EOF).
//!
//! Everything parsed here may come from the network: nothing panics, nothing allocates more
//! than the input's size, and malformed input is an error value, never a crash.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The WebSocket subprotocol with the stream-close signal (kubectl 1.30+).
pub const V5_PROTOCOL: &str = "v5.channel.k8s.io";
/// The WebSocket subprotocol of older clients and the kubelet's own streaming server.
pub const V4_PROTOCOL: &str = "v4.channel.k8s.io";

pub const STDIN: u8 = 0;
pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;
/// The command's outcome, one `Status` (see [`status_json`]).
pub const ERROR: u8 = 3;
pub const RESIZE: u8 = 4;
/// v5: `[CLOSE, n]` — stream `n` is closed by its writer.
pub const CLOSE: u8 = 255;

/// The status reason and cause type of a command that exited with a non-zero code.
pub const NON_ZERO_EXIT_CODE_REASON: &str = "NonZeroExitCode";
pub const EXIT_CODE_CAUSE_TYPE: &str = "ExitCode";

/// A resize message is a few dozen bytes of JSON; anything past this is refused unread.
pub const MAX_RESIZE_BYTES: usize = 1024;

/// A negotiated channel protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    V5,
    V4,
}

impl Protocol {
    /// In the server's order of preference (what it picks when a client offers several).
    pub const SUPPORTED: [Protocol; 2] = [Protocol::V5, Protocol::V4];

    pub fn name(self) -> &'static str {
        match self {
            Protocol::V5 => V5_PROTOCOL,
            Protocol::V4 => V4_PROTOCOL,
        }
    }

    /// Exactly the protocol's name (case matters, as in Kubernetes).
    pub fn from_name(name: &str) -> Option<Protocol> {
        Protocol::SUPPORTED.into_iter().find(|p| p.name() == name)
    }

    /// Whether the client can half-close a stream ([`CLOSE`]).
    pub fn supports_close(self) -> bool {
        self == Protocol::V5
    }
}

/// The protocols a client offers: the values of its `Sec-WebSocket-Protocol` headers, each a
/// comma-separated list.
pub fn offered_protocols<'a>(headers: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    headers
        .into_iter()
        .flat_map(|h| h.split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect()
}

/// The protocol to speak with a client that offers `offered`: the server's most preferred one
/// the client offers. `None` when there is none in common.
pub fn negotiate(offered: &[&str]) -> Option<Protocol> {
    Protocol::SUPPORTED
        .into_iter()
        .find(|p| offered.contains(&p.name()))
}

/// The error for a client that offers no protocol we speak, as Kubernetes words it.
pub fn unsupported_protocols_message(offered: &[&str]) -> String {
    let supported: Vec<&str> = Protocol::SUPPORTED.iter().map(|p| p.name()).collect();
    format!(
        "requested protocol(s) are not supported: [{}]; supports [{}]",
        offered.join(" "),
        supported.join(" ")
    )
}

/// A terminal's size in character cells (client-go's `TerminalSize`, capitalised in JSON).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TerminalSize {
    #[serde(rename = "Width")]
    pub width: u16,
    #[serde(rename = "Height")]
    pub height: u16,
}

/// What one message from a client means to the server.
#[derive(Debug, PartialEq, Eq)]
pub enum ClientFrame<'a> {
    /// Input for the command.
    Stdin(&'a [u8]),
    Resize(TerminalSize),
    /// v5: the client closed a stream (stdin: end of input).
    Close(u8),
    /// Data on a channel the server does not read (stdout, stderr, error, or no channel at
    /// all): dropped, as Kubernetes drops it.
    Ignored(u8),
    /// A message without even a channel byte.
    Empty,
}

/// A client message the server cannot accept.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// v5's close signal is exactly `[255, channel]`, for a channel that exists. Kubernetes
    /// ends the connection on a malformed one.
    #[error("malformed stream close signal: {0} byte(s) after the signal, expected 1")]
    CloseLength(usize),
    #[error("stream close signal for channel {0}, which does not exist")]
    CloseChannel(u8),
    /// The stream stays open; only this message is dropped.
    #[error("resize message of {0} bytes is over the limit of {MAX_RESIZE_BYTES}")]
    ResizeTooLarge(usize),
    #[error("invalid resize message: {0}")]
    BadResize(String),
}

impl FrameError {
    /// Whether the connection must end (else only the message is dropped).
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            FrameError::CloseLength(_) | FrameError::CloseChannel(_)
        )
    }
}

/// Parse one message a client sent (the payload of a binary WebSocket message).
pub fn parse_client_frame(protocol: Protocol, data: &[u8]) -> Result<ClientFrame<'_>, FrameError> {
    let Some((&channel, rest)) = data.split_first() else {
        return Ok(ClientFrame::Empty);
    };
    match channel {
        STDIN => Ok(ClientFrame::Stdin(rest)),
        RESIZE => parse_resize(rest).map(ClientFrame::Resize),
        CLOSE if protocol.supports_close() => match rest {
            [c] if *c <= RESIZE => Ok(ClientFrame::Close(*c)),
            [c] => Err(FrameError::CloseChannel(*c)),
            _ => Err(FrameError::CloseLength(rest.len())),
        },
        other => Ok(ClientFrame::Ignored(other)),
    }
}

/// A resize message: `{"Width":W,"Height":H}`; sizes must fit in 16 bits.
pub fn parse_resize(data: &[u8]) -> Result<TerminalSize, FrameError> {
    if data.len() > MAX_RESIZE_BYTES {
        return Err(FrameError::ResizeTooLarge(data.len()));
    }
    serde_json::from_slice(data).map_err(|e| FrameError::BadResize(e.to_string()))
}

/// A message on `channel`: the channel byte, then the data.
pub fn frame(channel: u8, data: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(data.len() + 1);
    f.push(channel);
    f.extend_from_slice(data);
    f
}

/// v5: the client tells the server it closed `channel` (stdin at end of input).
pub fn close_frame(channel: u8) -> Vec<u8> {
    vec![CLOSE, channel]
}

/// A resize message on the resize channel.
pub fn resize_frame(size: TerminalSize) -> Vec<u8> {
    let json = serde_json::to_vec(&size).unwrap_or_default();
    frame(RESIZE, &json)
}

/// How a command run ended, as the server reports it on the error channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// It ran and exited with this code (0: success).
    Exited(i32),
    /// It could not be run (not found, container gone…): the message says why.
    Failed(String),
}

/// `[sh -c exit 3]`: a command as Go's `%v` prints a string slice.
fn go_slice(command: &[String]) -> String {
    format!("[{}]", command.join(" "))
}

/// The `Status` the kubelet writes on the error channel when the command is over (the shape of
/// Kubernetes' `v4WriteStatusFunc`: the status alone, without kind or apiVersion).
pub fn status_json(command: &[String], outcome: &Outcome) -> Value {
    match outcome {
        Outcome::Exited(0) => json!({"metadata": {}, "status": "Success"}),
        Outcome::Exited(code) => json!({
            "metadata": {},
            "status": "Failure",
            "message": format!(
                "command terminated with non-zero exit code: error executing command {}, exit code {code}",
                go_slice(command)
            ),
            "reason": NON_ZERO_EXIT_CODE_REASON,
            "details": {"causes": [{"reason": EXIT_CODE_CAUSE_TYPE, "message": code.to_string()}]},
        }),
        Outcome::Failed(why) => json!({
            "metadata": {},
            "status": "Failure",
            "message": format!("Internal error occurred: error executing command in container: {why}"),
            "reason": "InternalError",
            "details": {"causes": [{"message": format!("error executing command in container: {why}")}]},
            "code": 500,
        }),
    }
}

/// The error channel's status as bytes, ready for [`frame`].
pub fn status_bytes(command: &[String], outcome: &Outcome) -> Vec<u8> {
    serde_json::to_vec(&status_json(command, outcome)).unwrap_or_default()
}

/// What a client makes of the error channel's status (client-go's `errorDecoderV4`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Finished {
    /// The command exited with this code (0 for `Success`).
    Exit(u8),
    /// Any other failure; the message is what kubectl prints after `error: `.
    Error(String),
}

/// Decode the error channel's content (the concatenation of its messages).
pub fn decode_status(data: &[u8]) -> Finished {
    let status: Value = match serde_json::from_slice(data) {
        Ok(v) => v,
        Err(e) => {
            return Finished::Error(format!(
                "error stream protocol error: {e} in {:?}",
                truncate(&String::from_utf8_lossy(data), 200)
            ));
        }
    };
    match status["status"].as_str() {
        Some("Success") => Finished::Exit(0),
        Some("Failure") if status["reason"] == NON_ZERO_EXIT_CODE_REASON => {
            let Some(causes) = status.pointer("/details/causes").and_then(Value::as_array) else {
                return Finished::Error("error stream protocol error: details must be set".into());
            };
            let Some(cause) = causes.iter().find(|c| c["reason"] == EXIT_CODE_CAUSE_TYPE) else {
                return Finished::Error(format!(
                    "error stream protocol error: no {EXIT_CODE_CAUSE_TYPE} cause given"
                ));
            };
            let text = cause["message"].as_str().unwrap_or_default();
            match text.parse::<u8>() {
                Ok(code) => Finished::Exit(code),
                Err(_) => Finished::Error(format!(
                    "error stream protocol error: invalid exit code value {:?}",
                    truncate(text, 50)
                )),
            }
        }
        Some("Failure") => Finished::Error(status["message"].as_str().unwrap_or_default().into()),
        _ => Finished::Error("error stream protocol error: unknown error".into()),
    }
}

/// At most `max` characters of `s` (never cut inside a character).
fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiates_the_preferred_common_protocol() {
        let offered = offered_protocols(["v4.channel.k8s.io, v5.channel.k8s.io", "x"]);
        assert_eq!(offered, ["v4.channel.k8s.io", "v5.channel.k8s.io", "x"]);
        assert_eq!(negotiate(&offered), Some(Protocol::V5));
        assert_eq!(negotiate(&["v4.channel.k8s.io"]), Some(Protocol::V4));
        assert_eq!(negotiate(&["V5.CHANNEL.K8S.IO", "channel.k8s.io"]), None);
        assert_eq!(negotiate(&[]), None);
        assert_eq!(
            unsupported_protocols_message(&["a", "b"]),
            "requested protocol(s) are not supported: [a b]; supports [v5.channel.k8s.io v4.channel.k8s.io]"
        );
        assert_eq!(Protocol::from_name("v4.channel.k8s.io"), Some(Protocol::V4));
        assert!(Protocol::V5.supports_close() && !Protocol::V4.supports_close());
    }

    #[test]
    fn parses_client_frames() {
        let p = Protocol::V5;
        assert_eq!(parse_client_frame(p, b""), Ok(ClientFrame::Empty));
        assert_eq!(
            parse_client_frame(p, b"\0hi\n"),
            Ok(ClientFrame::Stdin(b"hi\n"))
        );
        assert_eq!(parse_client_frame(p, b"\0"), Ok(ClientFrame::Stdin(b"")));
        assert_eq!(
            parse_client_frame(p, b"\x04{\"Width\":80,\"Height\":24}"),
            Ok(ClientFrame::Resize(TerminalSize {
                width: 80,
                height: 24
            }))
        );
        assert_eq!(parse_client_frame(p, &[255, 0]), Ok(ClientFrame::Close(0)));
        assert_eq!(
            parse_client_frame(p, b"\x01out"),
            Ok(ClientFrame::Ignored(1))
        );
        assert_eq!(
            parse_client_frame(p, b"\x07??"),
            Ok(ClientFrame::Ignored(7))
        );
    }

    #[test]
    fn hostile_frames_are_errors_not_panics() {
        let p = Protocol::V5;
        let e = parse_client_frame(p, &[255]).unwrap_err();
        assert_eq!(e, FrameError::CloseLength(0));
        assert!(e.is_fatal());
        assert_eq!(
            parse_client_frame(p, &[255, 0, 0]),
            Err(FrameError::CloseLength(2))
        );
        assert_eq!(
            parse_client_frame(p, &[255, 9]),
            Err(FrameError::CloseChannel(9))
        );
        // v4 has no close signal: channel 255 is just a channel nobody reads.
        assert_eq!(
            parse_client_frame(Protocol::V4, &[255, 0]),
            Ok(ClientFrame::Ignored(255))
        );
        // Oversized resize messages are refused without being parsed.
        let mut big = vec![RESIZE];
        big.extend(std::iter::repeat_n(b' ', MAX_RESIZE_BYTES + 1));
        let e = parse_client_frame(p, &big).unwrap_err();
        assert_eq!(e, FrameError::ResizeTooLarge(MAX_RESIZE_BYTES + 1));
        assert!(!e.is_fatal());
        for bad in [
            &b"\x04"[..],
            b"\x04{",
            b"\x04{\"Width\":-1,\"Height\":2}",
            b"\x04{\"Width\":70000,\"Height\":2}",
            b"\x04{\"Width\":\"\xc3\xa9\xe2\x82\xac\",\"Height\":2}",
            b"\x04\xff\xfe\xfd",
        ] {
            assert!(
                matches!(parse_client_frame(p, bad), Err(FrameError::BadResize(_))),
                "{bad:?}"
            );
        }
        // Missing fields are zero and unknown ones ignored, as with Go's decoder.
        assert_eq!(
            parse_resize(b"{\"Width\":5}"),
            Ok(TerminalSize {
                width: 5,
                height: 0
            })
        );
        assert_eq!(
            parse_resize("{\"Wìdth\":1,\"Height\":2}".as_bytes()),
            Ok(TerminalSize {
                width: 0,
                height: 2
            })
        );
    }

    #[test]
    fn frames_round_trip() {
        assert_eq!(frame(STDOUT, b"abc"), b"\x01abc");
        assert_eq!(frame(ERROR, b""), [3]);
        assert_eq!(close_frame(STDIN), [255, 0]);
        let r = resize_frame(TerminalSize {
            width: 100,
            height: 40,
        });
        assert_eq!(r[0], RESIZE);
        assert_eq!(
            parse_resize(&r[1..]),
            Ok(TerminalSize {
                width: 100,
                height: 40
            })
        );
    }

    #[test]
    fn statuses_say_how_the_command_ended() {
        let cmd = vec!["sh".to_string(), "-c".into(), "exit 3".into()];
        let ok = status_json(&cmd, &Outcome::Exited(0));
        assert_eq!(ok, json!({"metadata": {}, "status": "Success"}));
        assert_eq!(
            decode_status(&status_bytes(&cmd, &Outcome::Exited(0))),
            Finished::Exit(0)
        );

        let three = status_json(&cmd, &Outcome::Exited(3));
        assert_eq!(three["reason"], "NonZeroExitCode");
        assert_eq!(
            three["details"]["causes"][0],
            json!({"reason": "ExitCode", "message": "3"})
        );
        assert_eq!(
            three["message"],
            "command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3"
        );
        assert_eq!(
            decode_status(&status_bytes(&cmd, &Outcome::Exited(3))),
            Finished::Exit(3)
        );

        let failed = Outcome::Failed("exec: \"nope\": executable file not found in $PATH".into());
        assert_eq!(
            decode_status(&status_bytes(&cmd, &failed)),
            Finished::Error(
                "Internal error occurred: error executing command in container: exec: \"nope\": executable file not found in $PATH".into()
            )
        );
    }

    #[test]
    fn hostile_statuses_decode_to_errors() {
        let err = |s: &str| match decode_status(s.as_bytes()) {
            Finished::Error(m) => m,
            other => panic!("{s}: {other:?}"),
        };
        assert!(err("").starts_with("error stream protocol error: "));
        assert!(err("{\"status\":").starts_with("error stream protocol error: "));
        assert_eq!(err("{}"), "error stream protocol error: unknown error");
        assert_eq!(
            err("{\"status\":\"Failure\",\"reason\":\"NonZeroExitCode\"}"),
            "error stream protocol error: details must be set"
        );
        assert_eq!(
            err(
                "{\"status\":\"Failure\",\"reason\":\"NonZeroExitCode\",\"details\":{\"causes\":[]}}"
            ),
            "error stream protocol error: no ExitCode cause given"
        );
        for bad in ["256", "-1", "x", "ééé"] {
            let s = json!({"status": "Failure", "reason": "NonZeroExitCode",
                "details": {"causes": [{"reason": "ExitCode", "message": bad}]}});
            assert!(
                err(&s.to_string()).contains("invalid exit code value"),
                "{bad}"
            );
        }
        assert_eq!(
            err("{\"status\":\"Failure\",\"message\":\"ünïcödé ✓\"}"),
            "ünïcödé ✓"
        );
        // Invalid UTF-8 and long multi-byte payloads are quoted, truncated on a character.
        let long = "é".repeat(500);
        assert!(err(&long).chars().count() < 400);
        assert!(err("\u{fffd}\u{7f}").starts_with("error stream protocol error"));
        assert!(matches!(decode_status(&[0xff, 0xfe]), Finished::Error(_)));
    }
}
