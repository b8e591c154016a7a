//! Go's `text/tabwriter`, with kubectl's settings for `get` (minimum width 6, padding 3) and
//! `describe` (minimum width 0, padding 2): tab-separated cells in, aligned columns out, padded
//! with spaces, left-aligned.
//!
//! As in Go, a cell is text terminated by a tab; the last cell of a line is not part of a
//! column. Columns are aligned over blocks of consecutive lines that have a cell in them.
//! Widths count characters on screen (ANSI colour sequences take no room).

use crate::color::visible_width;

/// How wide columns are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    pub min_width: usize,
    pub padding: usize,
}

/// kubectl's `get` printer (`printers.GetNewTabWriter`: minwidth 6, padding 3).
pub const GET: Settings = Settings {
    min_width: 6,
    padding: 3,
};

/// kubectl's `describe` (`tabbedString`: minwidth 0, padding 2).
pub const DESCRIBE: Settings = Settings {
    min_width: 0,
    padding: 2,
};

/// Align every line of `text` (cells separated by `\t`) as `kubectl get` does.
pub fn align(text: &str) -> String {
    align_with(text, GET)
}

/// Align with the given settings.
pub fn align_with(text: &str, settings: Settings) -> String {
    align_min(text, settings, &[]).0
}

/// Align, with columns at least as wide as `min_widths` (the widths of what was printed
/// before, so that `get -w` rows line up with the first table); returns the text and the
/// widths used, for the next call.
pub fn align_min(text: &str, settings: Settings, min_widths: &[usize]) -> (String, Vec<usize>) {
    let lines: Vec<Vec<&str>> = text
        .split_terminator('\n')
        .map(|l| l.split('\t').collect())
        .collect();
    let mut out = String::with_capacity(text.len() * 2);
    let mut widths = Vec::new();
    let mut seen = min_widths.to_vec();
    let f = Formatter {
        lines: &lines,
        settings,
        min_widths,
    };
    f.format(0, lines.len(), &mut widths, &mut seen, &mut out);
    (out, seen)
}

struct Formatter<'a> {
    lines: &'a [Vec<&'a str>],
    settings: Settings,
    min_widths: &'a [usize],
}

impl Formatter<'_> {
    /// Go's `Writer.format`: lay out lines `from..to`, given the widths of the columns to the
    /// left.
    fn format(
        &self,
        from: usize,
        to: usize,
        widths: &mut Vec<usize>,
        seen: &mut Vec<usize>,
        out: &mut String,
    ) {
        let lines = self.lines;
        let column = widths.len();
        let mut printed = from;
        let mut this = from;
        while this < to {
            if column + 1 >= lines[this].len() {
                this += 1;
                continue;
            }
            // A block of lines with a cell in this column starts here.
            self.write_lines(printed, this, widths, out);
            let start = this;
            let mut w = self
                .settings
                .min_width
                .max(self.min_widths.get(column).copied().unwrap_or(0));
            while this < to && column + 1 < lines[this].len() {
                w = w.max(visible_width(lines[this][column]) + self.settings.padding);
                this += 1;
            }
            if seen.len() <= column {
                seen.resize(column + 1, 0);
            }
            seen[column] = seen[column].max(w);
            widths.push(w);
            self.format(start, this, widths, seen, out);
            widths.pop();
            printed = this;
        }
        self.write_lines(printed, to, widths, out);
    }

    fn write_lines(&self, from: usize, to: usize, widths: &[usize], out: &mut String) {
        for line in &self.lines[from..to] {
            for (j, cell) in line.iter().enumerate() {
                out.push_str(cell);
                if j + 1 < line.len() {
                    let w = widths.get(j).copied().unwrap_or(0);
                    for _ in visible_width(cell)..w {
                        out.push(' ');
                    }
                }
            }
            out.push('\n');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_padded_by_three_with_a_minimum_of_six() {
        let got = align("NAME\tREADY\tAGE\nweb-1\t1/1\t5s\nx\t0/1\t10m\n");
        assert_eq!(
            got,
            "NAME    READY   AGE\n\
             web-1   1/1     5s\n\
             x       0/1     10m\n"
        );
    }

    #[test]
    fn lines_with_fewer_cells_end_their_block() {
        let got = align("a\tb\tc\nlonger\td\n\nxx\ty\n");
        assert_eq!(got, "a        b     c\nlonger   d\n\nxx    y\n");
    }

    #[test]
    fn widths_count_characters_not_bytes() {
        assert_eq!(align("héllo\tx\nab\ty\n"), "héllo   x\nab      y\n");
    }

    #[test]
    fn describe_settings() {
        assert_eq!(
            align_with("Name:\tweb\nNamespace:\tdefault\n", DESCRIBE),
            "Name:       web\nNamespace:  default\n"
        );
    }

    #[test]
    fn later_rows_keep_earlier_widths() {
        let (first, widths) = align_min("NAME\tSTATUS\tAGE\nweb-1\tRunning\t5s\n", GET, &[]);
        assert_eq!(first, "NAME    STATUS    AGE\nweb-1   Running   5s\n");
        let (next, _) = align_min("web-1\tTerminating\t6s\n", GET, &widths);
        assert_eq!(next, "web-1   Terminating   6s\n");
        let (next, _) = align_min("w\tPending\t1s\n", GET, &widths);
        assert_eq!(next, "w       Pending   1s\n");
    }
}
