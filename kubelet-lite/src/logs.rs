//! Container logs, CRI-style: the runtime pipes a process's stdout and stderr through
//! [`capture`], which writes one record per line, `<RFC3339Nano> <stream> <F|P> <text>`
//! (`P` for a partial line: a very long one, or the unterminated end of the output), so every
//! line carries the time it was written. Reading ([`Renderer`], [`render`]) strips the
//! framing again and applies `tailLines`, `timestamps`, `sinceTime` and `limitBytes`, as
//! `kubectl logs` expects.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{mpsc, watch};

/// Lines longer than this are split into partial records.
pub const MAX_RECORD: usize = 16 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// Time formatted as Go's RFC3339Nano (trailing zeros of the fraction trimmed).
pub fn rfc3339_nano(t: DateTime<Utc>) -> String {
    let base = t.format("%Y-%m-%dT%H:%M:%S").to_string();
    let nanos = t.timestamp_subsec_nanos();
    if nanos == 0 {
        return format!("{base}Z");
    }
    let frac = format!("{nanos:09}");
    format!("{base}.{}Z", frac.trim_end_matches('0'))
}

/// One record as stored: `<time> <stream> <F|P> <content>\n`.
pub fn format_record(t: DateTime<Utc>, stream: Stream, partial: bool, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 48);
    out.extend_from_slice(t.format("%Y-%m-%dT%H:%M:%S%.9fZ").to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(stream.as_str().as_bytes());
    out.extend_from_slice(if partial { b" P " } else { b" F " });
    out.extend_from_slice(content);
    out.push(b'\n');
    out
}

/// A parsed record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    pub time: DateTime<Utc>,
    pub stream: Stream,
    /// A partial line: no newline follows its content.
    pub partial: bool,
    pub content: &'a [u8],
}

/// Parse one stored line (without its `\n`). `None` for a malformed line.
pub fn parse_record(line: &[u8]) -> Option<Record<'_>> {
    let mut parts = line.splitn(4, |b| *b == b' ');
    let time = std::str::from_utf8(parts.next()?).ok()?;
    let time = DateTime::parse_from_rfc3339(time).ok()?.with_timezone(&Utc);
    let stream = match parts.next()? {
        b"stdout" => Stream::Stdout,
        b"stderr" => Stream::Stderr,
        _ => return None,
    };
    let partial = match parts.next()? {
        b"F" => false,
        b"P" => true,
        _ => return None,
    };
    Some(Record {
        time,
        stream,
        partial,
        content: parts.next().unwrap_or_default(),
    })
}

/// Split stored bytes into records; a trailing incomplete line is left out. Returns the
/// records and how many bytes they used.
pub fn parse_records(buf: &[u8]) -> (Vec<Record<'_>>, usize) {
    let mut out = Vec::new();
    let mut used = 0;
    while let Some(pos) = buf[used..].iter().position(|b| *b == b'\n') {
        if let Some(r) = parse_record(&buf[used..used + pos]) {
            out.push(r);
        }
        used += pos + 1;
    }
    (out, used)
}

/// What the reader asked for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogOptions {
    pub follow: bool,
    pub previous: bool,
    pub timestamps: bool,
    pub tail_lines: Option<usize>,
    pub limit_bytes: Option<usize>,
    pub since: Option<DateTime<Utc>>,
}

/// Index of the first record of the last `n` lines (a line is a run of partial records ended
/// by a full one, or by the end).
pub fn tail_start(records: &[Record<'_>], n: usize) -> usize {
    if n == 0 {
        return records.len();
    }
    let mut lines = 0;
    let mut i = records.len();
    while i > 0 {
        // records[i-1] ends a line if it is full, or it is the very last record.
        let ends_line = !records[i - 1].partial || i == records.len();
        if ends_line {
            if lines == n {
                return i;
            }
            lines += 1;
        }
        i -= 1;
    }
    0
}

/// Turns records into what the reader sees, keeping state across calls (for `follow`).
#[derive(Debug)]
pub struct Renderer {
    timestamps: bool,
    since: Option<DateTime<Utc>>,
    remaining: Option<usize>,
    /// The next record starts a new line (gets a timestamp).
    at_line_start: bool,
}

impl Renderer {
    pub fn new(opts: &LogOptions) -> Self {
        Renderer {
            timestamps: opts.timestamps,
            since: opts.since,
            remaining: opts.limit_bytes,
            at_line_start: true,
        }
    }

    /// False once `limitBytes` is used up: the reader should stop.
    pub fn wants_more(&self) -> bool {
        self.remaining != Some(0)
    }

    pub fn push(&mut self, r: &Record<'_>, out: &mut Vec<u8>) {
        if self.since.is_some_and(|s| r.time < s) || !self.wants_more() {
            return;
        }
        let mut text = Vec::with_capacity(r.content.len() + 40);
        if self.timestamps && self.at_line_start {
            text.extend_from_slice(rfc3339_nano(r.time).as_bytes());
            text.push(b' ');
        }
        text.extend_from_slice(r.content);
        if !r.partial {
            text.push(b'\n');
        }
        self.at_line_start = !r.partial;
        if let Some(rem) = self.remaining.as_mut() {
            let n = text.len().min(*rem);
            *rem -= n;
            text.truncate(n);
        }
        out.extend_from_slice(&text);
    }
}

/// Render stored log bytes for a reader (everything but `follow`). Returns the output and how
/// many input bytes were complete records (where a follower continues).
pub fn render(stored: &[u8], opts: &LogOptions, renderer: &mut Renderer) -> (Vec<u8>, usize) {
    let (records, used) = parse_records(stored);
    let start = opts.tail_lines.map_or(0, |n| tail_start(&records, n));
    let mut out = Vec::new();
    for r in &records[start..] {
        renderer.push(r, &mut out);
    }
    (out, used)
}

/// How far a log file has been written, and whether its writer is done.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    pub bytes: u64,
    pub closed: bool,
    /// How many times the file was rotated (moved to [`rotated_path`] and started anew).
    pub generation: u64,
}

/// Where a log file goes when it reaches its maximum size (one rotated file is kept).
pub fn rotated_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".1");
    PathBuf::from(p)
}

/// A log file being written by [`capture`]: readers watch it to follow.
#[derive(Debug)]
pub struct LogHandle {
    pub path: PathBuf,
    progress: watch::Sender<Progress>,
}

impl LogHandle {
    /// A handle for a file nobody writes any more (after a kubelet restart).
    pub fn closed(path: PathBuf) -> Arc<LogHandle> {
        let (tx, _) = watch::channel(Progress {
            bytes: 0,
            closed: true,
            generation: 0,
        });
        Arc::new(LogHandle { path, progress: tx })
    }

    /// A handle whose progress someone else reports (a container shim writes the file).
    pub fn mirror(path: PathBuf, bytes: u64) -> Arc<LogHandle> {
        let (tx, _) = watch::channel(Progress {
            bytes,
            closed: false,
            generation: 0,
        });
        Arc::new(LogHandle { path, progress: tx })
    }

    pub fn set_progress(&self, p: Progress) {
        self.progress.send_replace(p);
    }

    pub fn subscribe(&self) -> watch::Receiver<Progress> {
        self.progress.subscribe()
    }

    pub fn is_closed(&self) -> bool {
        self.progress.borrow().closed
    }
}

/// Start copying a process's stdout and stderr into `path` as records. The handle closes when
/// both streams have ended (the process and everything it started exited or closed them).
/// When the file reaches `max_size` bytes it is rotated: moved to [`rotated_path`] (replacing
/// the previous one) and started anew, like the kubelet's `containerLogMaxSize` with
/// `containerLogMaxFiles: 2`.
pub fn capture<O, E>(
    path: &Path,
    max_size: u64,
    stdout: O,
    stderr: E,
) -> std::io::Result<Arc<LogHandle>>
where
    O: AsyncRead + Unpin + Send + 'static,
    E: AsyncRead + Unpin + Send + 'static,
{
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    let start = file.metadata().map(|m| m.len()).unwrap_or(0);
    let (ptx, _) = watch::channel(Progress {
        bytes: start,
        closed: false,
        generation: 0,
    });
    let handle = Arc::new(LogHandle {
        path: path.to_path_buf(),
        progress: ptx,
    });
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(256);
    tokio::spawn(pump(stdout, Stream::Stdout, tx.clone()));
    tokio::spawn(pump(stderr, Stream::Stderr, tx));
    let h = handle.clone();
    tokio::spawn(async move {
        let mut written = start;
        let mut generation = 0;
        while let Some(rec) = rx.recv().await {
            // Local appends of a few KiB: cheap enough to do inline.
            if let Err(e) = file.write_all(&rec) {
                tracing::warn!(path = %h.path.display(), error = %e, "cannot write container log");
            }
            written += rec.len() as u64;
            if written >= max_size {
                let _ = file.flush();
                let reopened = std::fs::rename(&h.path, rotated_path(&h.path)).and_then(|_| {
                    std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(&h.path)
                });
                match reopened {
                    Ok(f) => {
                        file = f;
                        written = 0;
                        generation += 1;
                    }
                    Err(e) => {
                        tracing::warn!(path = %h.path.display(), error = %e, "cannot rotate container log");
                    }
                }
            }
            h.progress.send_replace(Progress {
                bytes: written,
                closed: false,
                generation,
            });
        }
        let _ = file.flush();
        h.progress.send_replace(Progress {
            bytes: written,
            closed: true,
            generation,
        });
    });
    Ok(handle)
}

/// Read one stream, cut it into records, send them to the writer.
async fn pump<R: AsyncRead + Unpin>(mut src: R, stream: Stream, tx: mpsc::Sender<Vec<u8>>) {
    let mut pending: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 8192];
    loop {
        let n = match src.read(&mut chunk).await {
            Ok(0) | Err(_) => 0,
            Ok(n) => n,
        };
        let now = Utc::now();
        if n == 0 {
            if !pending.is_empty() {
                let _ = tx.send(format_record(now, stream, true, &pending)).await;
            }
            return;
        }
        pending.extend_from_slice(&chunk[..n]);
        let mut consumed = 0;
        while let Some(pos) = pending[consumed..].iter().position(|b| *b == b'\n') {
            let line = &pending[consumed..consumed + pos];
            for (i, piece) in line.chunks(MAX_RECORD).enumerate() {
                let last = (i + 1) * MAX_RECORD >= line.len();
                let _ = tx.send(format_record(now, stream, !last, piece)).await;
            }
            if line.is_empty() {
                let _ = tx.send(format_record(now, stream, false, b"")).await;
            }
            consumed += pos + 1;
        }
        pending.drain(..consumed);
        while pending.len() >= MAX_RECORD {
            let piece: Vec<u8> = pending.drain(..MAX_RECORD).collect();
            let _ = tx.send(format_record(now, stream, true, &piece)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn stored(lines: &[(&str, bool, &str)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (time, partial, text) in lines {
            out.extend(format_record(
                t(time),
                Stream::Stdout,
                *partial,
                text.as_bytes(),
            ));
        }
        out
    }

    #[test]
    fn records_round_trip() {
        let rec = format_record(
            t("2024-01-02T03:04:05.120Z"),
            Stream::Stderr,
            false,
            b"hello world",
        );
        assert_eq!(
            String::from_utf8_lossy(&rec),
            "2024-01-02T03:04:05.120000000Z stderr F hello world\n"
        );
        let r = parse_record(&rec[..rec.len() - 1]).unwrap();
        assert_eq!(r.stream, Stream::Stderr);
        assert!(!r.partial);
        assert_eq!(r.content, b"hello world");
        assert_eq!(rfc3339_nano(r.time), "2024-01-02T03:04:05.12Z");
        assert_eq!(
            rfc3339_nano(t("2024-01-02T03:04:05Z")),
            "2024-01-02T03:04:05Z"
        );
        assert!(parse_record(b"garbage").is_none());
        assert!(parse_record(b"2024-01-02T03:04:05Z stdout X a").is_none());
        let empty = parse_record(b"2024-01-02T03:04:05Z stdout F ").unwrap();
        assert_eq!(empty.content, b"");
    }

    #[test]
    fn tail_counts_lines_not_records() {
        let s = stored(&[
            ("2024-01-01T00:00:01Z", false, "one"),
            ("2024-01-01T00:00:02Z", true, "tw"),
            ("2024-01-01T00:00:03Z", false, "o"),
            ("2024-01-01T00:00:04Z", false, "three"),
            ("2024-01-01T00:00:05Z", true, "four-unterminated"),
        ]);
        let render_with = |opts: LogOptions| {
            let mut r = Renderer::new(&opts);
            String::from_utf8(render(&s, &opts, &mut r).0).unwrap()
        };
        let all = render_with(LogOptions::default());
        assert_eq!(all, "one\ntwo\nthree\nfour-unterminated");
        let tail = |n| {
            render_with(LogOptions {
                tail_lines: Some(n),
                ..Default::default()
            })
        };
        assert_eq!(tail(0), "");
        assert_eq!(tail(1), "four-unterminated");
        assert_eq!(tail(2), "three\nfour-unterminated");
        assert_eq!(tail(3), "two\nthree\nfour-unterminated");
        assert_eq!(tail(10), all);
    }

    #[test]
    fn timestamps_since_and_limit() {
        let s = stored(&[
            ("2024-01-01T00:00:01.5Z", false, "one"),
            ("2024-01-01T00:00:02Z", true, "tw"),
            ("2024-01-01T00:00:03Z", false, "o"),
            ("2024-01-01T00:00:04Z", false, "three"),
        ]);
        let opts = LogOptions {
            timestamps: true,
            ..Default::default()
        };
        let mut r = Renderer::new(&opts);
        let (out, used) = render(&s, &opts, &mut r);
        assert_eq!(used, s.len());
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "2024-01-01T00:00:01.5Z one\n2024-01-01T00:00:02Z two\n2024-01-01T00:00:04Z three\n"
        );
        let opts = LogOptions {
            since: Some(t("2024-01-01T00:00:03Z")),
            ..Default::default()
        };
        let mut r = Renderer::new(&opts);
        assert_eq!(
            String::from_utf8(render(&s, &opts, &mut r).0).unwrap(),
            "o\nthree\n"
        );
        let opts = LogOptions {
            limit_bytes: Some(6),
            ..Default::default()
        };
        let mut r = Renderer::new(&opts);
        assert_eq!(
            String::from_utf8(render(&s, &opts, &mut r).0).unwrap(),
            "one\ntw"
        );
        assert!(!r.wants_more());
    }

    #[test]
    fn an_incomplete_last_line_waits() {
        let mut s = stored(&[("2024-01-01T00:00:01Z", false, "one")]);
        let complete = s.len();
        s.extend_from_slice(b"2024-01-01T00:00:02Z stdout F tw");
        let (records, used) = parse_records(&s);
        assert_eq!(records.len(), 1);
        assert_eq!(used, complete);
    }

    #[tokio::test]
    async fn capture_splits_lines_and_streams() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs/web/0.log");
        let long = "x".repeat(MAX_RECORD + 10);
        let out_text = format!("hello\n\n{long}\nno newline");
        let h = capture(
            &path,
            u64::MAX,
            std::io::Cursor::new(out_text.clone().into_bytes()),
            &b"oops\n"[..],
        )
        .unwrap();
        let mut rx = h.subscribe();
        rx.wait_for(|p| p.closed).await.unwrap();
        let stored = std::fs::read(&path).unwrap();
        let (records, _) = parse_records(&stored);
        let stdout: Vec<(bool, usize)> = records
            .iter()
            .filter(|r| r.stream == Stream::Stdout)
            .map(|r| (r.partial, r.content.len()))
            .collect();
        assert_eq!(
            stdout,
            vec![
                (false, 5),
                (false, 0),
                (true, MAX_RECORD),
                (false, 10),
                (true, 10)
            ]
        );
        let opts = LogOptions::default();
        let mut r = Renderer::new(&opts);
        let text = String::from_utf8(render(&stored, &opts, &mut r).0).unwrap();
        assert!(text.contains("oops\n"));
        assert!(text.contains(&format!("hello\n\n{long}\n")));
        assert!(text.ends_with("no newline") || text.contains("no newline"));
    }

    #[tokio::test]
    async fn logs_rotate_at_their_maximum_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let text: String = (0..100).map(|i| format!("line {i:03}\n")).collect();
        let h = capture(
            &path,
            1000,
            std::io::Cursor::new(text.into_bytes()),
            tokio::io::empty(),
        )
        .unwrap();
        let mut rx = h.subscribe();
        let p = *rx.wait_for(|p| p.closed).await.unwrap();
        assert!(p.generation >= 2, "{p:?}");
        let current = std::fs::read(&path).unwrap();
        let rotated = std::fs::read(rotated_path(&path)).unwrap();
        assert!(current.len() < 1000 && rotated.len() >= 1000);
        let opts = LogOptions::default();
        let last = String::from_utf8(render(&current, &opts, &mut Renderer::new(&opts)).0).unwrap();
        assert!(last.ends_with("line 099\n"), "{last}");
        assert!(
            !dir.path().join("0.log.2").exists(),
            "one rotated file is kept"
        );
    }
}
