//! Colours, for people only: on when the stream is a terminal, `NO_COLOR` is unset (or empty)
//! and `TERM` is not `dumb`; never in pipes, files or tests. Tables colour their STATUS column,
//! `Warning:` is yellow, and `rollout status` and `cluster-info` highlight what matters.

use std::io::IsTerminal;

/// The colours kubectl-lite uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Color {
    Red,
    Green,
    Yellow,
    Cyan,
    Bold,
}

impl Color {
    fn code(self) -> &'static str {
        match self {
            Color::Red => "31",
            Color::Green => "32",
            Color::Yellow => "33",
            Color::Cyan => "36",
            Color::Bold => "1",
        }
    }
}

/// Whether colours are wanted on a stream that is (or is not) a terminal.
fn wanted(is_terminal: bool) -> bool {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let dumb = std::env::var("TERM").is_ok_and(|t| t == "dumb");
    is_terminal && !no_color && !dumb
}

/// Colours on stdout?
pub fn stdout() -> bool {
    wanted(std::io::stdout().is_terminal())
}

/// Colours on stderr?
pub fn stderr() -> bool {
    wanted(std::io::stderr().is_terminal())
}

/// `text` in `color` when `on`, else unchanged.
pub fn paint(on: bool, color: Color, text: &str) -> String {
    if !on || text.is_empty() {
        return text.to_string();
    }
    format!("\x1b[{}m{text}\x1b[0m", color.code())
}

/// The colour of a STATUS cell: green when all is well, yellow while on the way (or held),
/// red when something is wrong.
pub fn status(cell: &str) -> Option<Color> {
    let first = cell.split(',').next().unwrap_or(cell);
    if cell.contains("SchedulingDisabled") || cell.contains("Unknown") {
        return Some(Color::Yellow);
    }
    match first {
        "Running" | "Ready" | "Active" | "Completed" | "Succeeded" | "True" | "Bound" => {
            Some(Color::Green)
        }
        "Pending" | "ContainerCreating" | "PodInitializing" | "Terminating" => Some(Color::Yellow),
        s if s.starts_with("Init:") => Some(Color::Yellow),
        "" => None,
        _ => Some(Color::Red),
    }
}

/// Width on screen: characters, not counting ANSI escape sequences.
pub fn visible_width(s: &str) -> usize {
    let mut n = 0;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            // CSI: ESC [ parameters final-byte (0x40..=0x7e).
            for d in chars.by_ref() {
                if ('\x40'..='\x7e').contains(&d) && d != '[' {
                    break;
                }
            }
            continue;
        }
        n += 1;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_by_meaning() {
        assert_eq!(status("Running"), Some(Color::Green));
        assert_eq!(status("Ready,SchedulingDisabled"), Some(Color::Yellow));
        assert_eq!(status("ContainerCreating"), Some(Color::Yellow));
        assert_eq!(status("CrashLoopBackOff"), Some(Color::Red));
        assert_eq!(status("NotReady"), Some(Color::Red));
        assert_eq!(status(""), None);
    }

    #[test]
    fn escapes_take_no_room() {
        let s = paint(true, Color::Green, "Running");
        assert_eq!(s, "\x1b[32mRunning\x1b[0m");
        assert_eq!(visible_width(&s), 7);
        assert_eq!(paint(false, Color::Green, "Running"), "Running");
    }
}
