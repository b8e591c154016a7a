//! SPDY/3.1 framing, as Kubernetes' streaming protocols use it (`kubectl port-forward`, which
//! kubectl 1.37 runs inside a WebSocket: `SPDY/3.1+portforward.k8s.io`). Pure: bytes in, frames
//! out, and back; the header blocks' zlib streams (one per direction, primed with SPDY/3's
//! dictionary) live in a [`Codec`]. Only what port-forward needs is understood; other control
//! frames are skipped whole.
//!
//! Frame layouts (SPDY/3 draft, section 2.2 and 2.6):
//! - control: `1 | version(15) | type(16)`, `flags(8) | length(24)`, payload;
//! - data: `0 | stream-id(31)`, `flags(8) | length(24)`, payload.

use bytes::{Buf, BufMut, BytesMut};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

pub const VERSION: u16 = 3;
pub const FLAG_FIN: u8 = 0x01;
/// The largest frame payload read (24-bit lengths allow 16 MiB; nothing here needs that).
pub const MAX_FRAME: usize = 1 << 20;
/// The largest decompressed header block.
const MAX_HEADERS: usize = 64 * 1024;

/// RST_STREAM status codes.
pub const PROTOCOL_ERROR: u32 = 1;
pub const REFUSED_STREAM: u32 = 3;
pub const CANCEL: u32 = 5;

/// Header names and values, in order (names lower-case).
pub type Headers = Vec<(String, String)>;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    SynStream {
        stream: u32,
        associated: u32,
        priority: u8,
        flags: u8,
        headers: Headers,
    },
    SynReply {
        stream: u32,
        flags: u8,
        headers: Headers,
    },
    RstStream {
        stream: u32,
        status: u32,
    },
    Settings {
        flags: u8,
        entries: Vec<(u8, u32, u32)>,
    },
    Ping(u32),
    GoAway {
        last_stream: u32,
        status: u32,
    },
    Headers {
        stream: u32,
        flags: u8,
        headers: Headers,
    },
    WindowUpdate {
        stream: u32,
        delta: u32,
    },
    Data {
        stream: u32,
        flags: u8,
        data: bytes::Bytes,
    },
    /// A control frame of a type not handled here (skipped).
    Unknown(u16),
}

/// One direction's zlib streams for header blocks, and the framing.
pub struct Codec {
    compress: Compress,
    decompress: Decompress,
}

impl Default for Codec {
    fn default() -> Self {
        Codec::new()
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("SPDY frame of {0} bytes is larger than allowed")]
    TooLarge(usize),
    #[error("unsupported SPDY version {0}")]
    Version(u16),
    #[error("malformed SPDY frame: {0}")]
    Malformed(&'static str),
    #[error("SPDY header block: {0}")]
    Headers(String),
}

impl Codec {
    pub fn new() -> Codec {
        let mut compress = Compress::new(Compression::default(), true);
        // Cannot fail for a fresh stream with a valid dictionary.
        let _ = compress.set_dictionary(dictionary());
        Codec {
            compress,
            decompress: Decompress::new(true),
        }
    }

    /// The next whole frame at the front of `buf` (consumed), `None` until one is there.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, Error> {
        if buf.len() < 8 {
            return Ok(None);
        }
        let len = (u32::from(buf[5]) << 16 | u32::from(buf[6]) << 8 | u32::from(buf[7])) as usize;
        if len > MAX_FRAME {
            return Err(Error::TooLarge(len));
        }
        if buf.len() < 8 + len {
            return Ok(None);
        }
        let mut f = buf.split_to(8 + len);
        let first = f.get_u32();
        let flags = f.get_u8();
        f.advance(3);
        if first & 0x8000_0000 == 0 {
            return Ok(Some(Frame::Data {
                stream: first & 0x7fff_ffff,
                flags,
                data: f.freeze(),
            }));
        }
        let version = ((first >> 16) & 0x7fff) as u16;
        if version != VERSION {
            return Err(Error::Version(version));
        }
        let kind = (first & 0xffff) as u16;
        let need = |f: &BytesMut, n: usize| {
            if f.len() < n {
                Err(Error::Malformed("payload too short"))
            } else {
                Ok(())
            }
        };
        Ok(Some(match kind {
            1 => {
                need(&f, 10)?;
                let stream = f.get_u32() & 0x7fff_ffff;
                let associated = f.get_u32() & 0x7fff_ffff;
                let priority = f.get_u8() >> 5;
                f.advance(1);
                let headers = self.read_headers(&f)?;
                Frame::SynStream {
                    stream,
                    associated,
                    priority,
                    flags,
                    headers,
                }
            }
            2 | 8 => {
                need(&f, 4)?;
                let stream = f.get_u32() & 0x7fff_ffff;
                let headers = self.read_headers(&f)?;
                if kind == 2 {
                    Frame::SynReply {
                        stream,
                        flags,
                        headers,
                    }
                } else {
                    Frame::Headers {
                        stream,
                        flags,
                        headers,
                    }
                }
            }
            3 => {
                need(&f, 8)?;
                Frame::RstStream {
                    stream: f.get_u32() & 0x7fff_ffff,
                    status: f.get_u32(),
                }
            }
            4 => {
                need(&f, 4)?;
                let n = f.get_u32() as usize;
                if n > f.len() / 8 {
                    return Err(Error::Malformed("SETTINGS count beyond the frame"));
                }
                let entries = (0..n)
                    .map(|_| {
                        let id = f.get_u32();
                        ((id >> 24) as u8, id & 0x00ff_ffff, f.get_u32())
                    })
                    .collect();
                Frame::Settings { flags, entries }
            }
            6 => {
                need(&f, 4)?;
                Frame::Ping(f.get_u32())
            }
            7 => {
                need(&f, 8)?;
                Frame::GoAway {
                    last_stream: f.get_u32() & 0x7fff_ffff,
                    status: f.get_u32(),
                }
            }
            9 => {
                need(&f, 8)?;
                Frame::WindowUpdate {
                    stream: f.get_u32() & 0x7fff_ffff,
                    delta: f.get_u32() & 0x7fff_ffff,
                }
            }
            other => Frame::Unknown(other),
        }))
    }

    /// `frame` as bytes (header blocks compressed with this side's zlib stream).
    pub fn encode(&mut self, frame: &Frame) -> Result<Vec<u8>, Error> {
        let mut out = Vec::new();
        let control = |out: &mut Vec<u8>, kind: u16, flags: u8, payload: &[u8]| {
            out.put_u16(0x8000 | VERSION);
            out.put_u16(kind);
            out.put_u8(flags);
            let len = payload.len() as u32;
            out.put_u8((len >> 16) as u8);
            out.put_u16(len as u16);
            out.extend_from_slice(payload);
        };
        match frame {
            Frame::Data {
                stream,
                flags,
                data,
            } => {
                if data.len() > 0x00ff_ffff {
                    return Err(Error::TooLarge(data.len()));
                }
                out.put_u32(stream & 0x7fff_ffff);
                out.put_u8(*flags);
                let len = data.len() as u32;
                out.put_u8((len >> 16) as u8);
                out.put_u16(len as u16);
                out.extend_from_slice(data);
            }
            Frame::SynStream {
                stream,
                associated,
                priority,
                flags,
                headers,
            } => {
                let mut p = Vec::new();
                p.put_u32(stream & 0x7fff_ffff);
                p.put_u32(associated & 0x7fff_ffff);
                p.put_u8((priority & 0x7) << 5);
                p.put_u8(0);
                p.extend(self.write_headers(headers)?);
                control(&mut out, 1, *flags, &p);
            }
            Frame::SynReply {
                stream,
                flags,
                headers,
            }
            | Frame::Headers {
                stream,
                flags,
                headers,
            } => {
                let kind = if matches!(frame, Frame::SynReply { .. }) {
                    2
                } else {
                    8
                };
                let mut p = Vec::new();
                p.put_u32(stream & 0x7fff_ffff);
                p.extend(self.write_headers(headers)?);
                control(&mut out, kind, *flags, &p);
            }
            Frame::RstStream { stream, status } => {
                let mut p = Vec::new();
                p.put_u32(stream & 0x7fff_ffff);
                p.put_u32(*status);
                control(&mut out, 3, 0, &p);
            }
            Frame::Settings { flags, entries } => {
                let mut p = Vec::new();
                p.put_u32(entries.len() as u32);
                for (f, id, v) in entries {
                    p.put_u32(u32::from(*f) << 24 | (id & 0x00ff_ffff));
                    p.put_u32(*v);
                }
                control(&mut out, 4, *flags, &p);
            }
            Frame::Ping(id) => control(&mut out, 6, 0, &id.to_be_bytes()),
            Frame::GoAway {
                last_stream,
                status,
            } => {
                let mut p = Vec::new();
                p.put_u32(last_stream & 0x7fff_ffff);
                p.put_u32(*status);
                control(&mut out, 7, 0, &p);
            }
            Frame::WindowUpdate { stream, delta } => {
                let mut p = Vec::new();
                p.put_u32(stream & 0x7fff_ffff);
                p.put_u32(delta & 0x7fff_ffff);
                control(&mut out, 9, 0, &p);
            }
            Frame::Unknown(_) => return Err(Error::Malformed("cannot write an unknown frame")),
        }
        Ok(out)
    }

    fn write_headers(&mut self, headers: &Headers) -> Result<Vec<u8>, Error> {
        let mut plain = Vec::new();
        plain.put_u32(headers.len() as u32);
        for (k, v) in headers {
            plain.put_u32(k.len() as u32);
            plain.extend_from_slice(k.to_ascii_lowercase().as_bytes());
            plain.put_u32(v.len() as u32);
            plain.extend_from_slice(v.as_bytes());
        }
        let mut out = Vec::with_capacity(plain.len() + 64);
        let mut input: &[u8] = &plain;
        loop {
            out.reserve(256);
            let before_in = self.compress.total_in();
            self.compress
                .compress_vec(input, &mut out, FlushCompress::Sync)
                .map_err(|e| Error::Headers(e.to_string()))?;
            let used = (self.compress.total_in() - before_in) as usize;
            input = input.get(used..).unwrap_or_default();
            // Done when all went in and the flush left room to spare.
            if input.is_empty() && out.len() < out.capacity() {
                return Ok(out);
            }
        }
    }

    fn read_headers(&mut self, compressed: &[u8]) -> Result<Headers, Error> {
        let mut plain = Vec::with_capacity(1024);
        let mut input = compressed;
        loop {
            if plain.len() >= MAX_HEADERS {
                return Err(Error::Headers("header block too large".into()));
            }
            plain.reserve(1024);
            let before_in = self.decompress.total_in();
            let before_out = plain.len();
            let r = self
                .decompress
                .decompress_vec(input, &mut plain, FlushDecompress::Sync);
            let used = (self.decompress.total_in() - before_in) as usize;
            input = input.get(used..).unwrap_or_default();
            match r {
                Ok(_) => {}
                Err(e) if e.needs_dictionary().is_some() => {
                    self.decompress
                        .set_dictionary(dictionary())
                        .map_err(|e| Error::Headers(e.to_string()))?;
                    continue;
                }
                Err(e) => return Err(Error::Headers(e.to_string())),
            }
            if matches!(r, Ok(Status::StreamEnd)) {
                break;
            }
            if input.is_empty() && plain.len() < plain.capacity() {
                break;
            }
            if used == 0 && plain.len() == before_out {
                return Err(Error::Headers(
                    "the header block does not decompress".into(),
                ));
            }
        }
        parse_header_block(&plain)
    }
}

/// `count(32) (len(32) name len(32) value)*`, values of one name joined by NUL (kept as one).
fn parse_header_block(b: &[u8]) -> Result<Headers, Error> {
    let mut b = b;
    let bad = |m: &str| Error::Headers(m.to_string());
    if b.len() < 4 {
        return Err(bad("no count"));
    }
    let n = b.get_u32() as usize;
    if n > b.len() / 8 {
        return Err(bad("more headers than bytes"));
    }
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let mut field = || -> Result<String, Error> {
            if b.len() < 4 {
                return Err(bad("truncated length"));
            }
            let len = b.get_u32() as usize;
            if b.len() < len {
                return Err(bad("truncated field"));
            }
            let s = String::from_utf8_lossy(&b[..len]).into_owned();
            b.advance(len);
            Ok(s)
        };
        let k = field()?;
        let v = field()?;
        out.push((k.to_ascii_lowercase(), v));
    }
    Ok(out)
}

/// The value of header `name` (lower-case).
pub fn header<'a>(h: &'a Headers, name: &str) -> Option<&'a str> {
    h.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// The words of SPDY/3's header dictionary, each preceded by its length (32 bits) in the
/// dictionary (the SPDY/3 draft, section 2.6.10.1).
const DICTIONARY_WORDS: &[&str] = &[
    "options",
    "head",
    "post",
    "put",
    "delete",
    "trace",
    "accept",
    "accept-charset",
    "accept-encoding",
    "accept-language",
    "accept-ranges",
    "age",
    "allow",
    "authorization",
    "cache-control",
    "connection",
    "content-base",
    "content-encoding",
    "content-language",
    "content-length",
    "content-location",
    "content-md5",
    "content-range",
    "content-type",
    "date",
    "etag",
    "expect",
    "expires",
    "from",
    "host",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "last-modified",
    "location",
    "max-forwards",
    "pragma",
    "proxy-authenticate",
    "proxy-authorization",
    "range",
    "referer",
    "retry-after",
    "server",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "vary",
    "via",
    "warning",
    "www-authenticate",
    "method",
    "get",
    "status",
    "200 OK",
    "version",
    "HTTP/1.1",
    "url",
    "public",
    "set-cookie",
    "keep-alive",
    "origin",
];

/// What follows the words in the dictionary, as it is.
const DICTIONARY_TAIL: &str = concat!(
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505",
    "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request",
    "401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented",
    "503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 ",
    "Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,",
    "application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age=",
    "gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.",
);

/// SPDY/3's zlib dictionary for header blocks: 1,423 bytes, Adler-32 `0xE3C6A7C2` (the id in
/// the zlib header of every peer's first block).
pub fn dictionary() -> &'static [u8] {
    static DICT: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    DICT.get_or_init(|| {
        let mut d = Vec::with_capacity(1423);
        for w in DICTIONARY_WORDS {
            d.put_u32(w.len() as u32);
            d.extend_from_slice(w.as_bytes());
        }
        d.extend_from_slice(DICTIONARY_TAIL.as_bytes());
        d
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_header_blocks_share_one_zlib_stream() {
        let mut client = Codec::new();
        let mut server = Codec::new();
        let frames = vec![
            Frame::SynStream {
                stream: 1,
                associated: 0,
                priority: 0,
                flags: 0,
                headers: vec![
                    ("streamtype".into(), "error".into()),
                    ("port".into(), "80".into()),
                    ("requestid".into(), "0".into()),
                ],
            },
            Frame::SynStream {
                stream: 3,
                associated: 0,
                priority: 0,
                flags: 0,
                headers: vec![
                    ("streamtype".into(), "data".into()),
                    ("port".into(), "80".into()),
                    ("requestid".into(), "0".into()),
                ],
            },
            Frame::Data {
                stream: 3,
                flags: FLAG_FIN,
                data: bytes::Bytes::from_static(b"GET / HTTP/1.0\r\n\r\n"),
            },
            Frame::Ping(7),
            Frame::RstStream {
                stream: 1,
                status: CANCEL,
            },
            Frame::WindowUpdate {
                stream: 3,
                delta: 65536,
            },
            Frame::GoAway {
                last_stream: 3,
                status: 0,
            },
            Frame::Settings {
                flags: 0,
                entries: vec![(0, 7, 262144)],
            },
        ];
        let mut wire = BytesMut::new();
        for f in &frames {
            wire.extend_from_slice(&client.encode(f).unwrap());
        }
        // Arrives in pieces: one byte at a time.
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for b in wire.iter() {
            buf.put_u8(*b);
            while let Some(f) = server.decode(&mut buf).unwrap() {
                got.push(f);
            }
        }
        assert_eq!(got, frames);
        // The reply direction has its own stream.
        let reply = Frame::SynReply {
            stream: 1,
            flags: 0,
            headers: vec![],
        };
        let mut b = BytesMut::from(&server.encode(&reply).unwrap()[..]);
        assert_eq!(client.decode(&mut b).unwrap(), Some(reply));
    }

    #[test]
    fn the_dictionary_is_spdy3s() {
        let d = dictionary();
        assert_eq!(d.len(), 1423);
        let (mut a, mut b) = (1u32, 0u32);
        for x in d {
            a = (a + u32::from(*x)) % 65521;
            b = (b + a) % 65521;
        }
        assert_eq!(b << 16 | a, 0xE3C6_A7C2);
        // Our first block names it in its zlib header, as Go's and C's zlib do.
        let mut c = Codec::new();
        let f = c
            .encode(&Frame::SynReply {
                stream: 1,
                flags: 0,
                headers: vec![],
            })
            .unwrap();
        assert_eq!(f[12], 0x78);
        assert_ne!(f[13] & 0x20, 0, "FDICT");
        assert_eq!(&f[14..18], &[0xe3, 0xc6, 0xa7, 0xc2]);
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        let mut c = Codec::new();
        // Version 2 control frame.
        let mut b = BytesMut::from(&[0x80, 0x02, 0, 1, 0, 0, 0, 0][..]);
        assert_eq!(c.decode(&mut b), Err(Error::Version(2)));
        // Too large.
        let mut b = BytesMut::from(&[0x80, 0x03, 0, 1, 0, 0xff, 0xff, 0xff][..]);
        assert!(matches!(c.decode(&mut b), Err(Error::TooLarge(_))));
        // SYN_STREAM whose header block is garbage.
        let mut b = BytesMut::from(
            &[
                0x80, 0x03, 0, 1, 0, 0, 0, 14, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4,
            ][..],
        );
        assert!(c.decode(&mut b).is_err());
        // Short payloads.
        let mut b = BytesMut::from(&[0x80, 0x03, 0, 6, 0, 0, 0, 1, 9][..]);
        assert!(c.decode(&mut b).is_err());
    }
}
