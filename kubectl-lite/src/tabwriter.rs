//! Go's `text/tabwriter` as kubectl configures it (minimum width 6, padding 3, padded with
//! spaces, left-aligned): tab-separated cells in, aligned columns out.
//!
//! As in Go, a cell is text terminated by a tab; the last cell of a line is not part of a
//! column. Columns are aligned over blocks of consecutive lines that have a cell in them.

/// kubectl's `tabwriterMinWidth`.
pub const MIN_WIDTH: usize = 6;
/// kubectl's `tabwriterPadding`.
pub const PADDING: usize = 3;

/// Align every line of `text` (cells separated by `\t`).
pub fn align(text: &str) -> String {
    let lines: Vec<Vec<&str>> = text
        .split_terminator('\n')
        .map(|l| l.split('\t').collect())
        .collect();
    let mut out = String::with_capacity(text.len() * 2);
    let mut widths = Vec::new();
    format(&lines, 0, lines.len(), &mut widths, &mut out);
    out
}

fn width(s: &str) -> usize {
    s.chars().count()
}

/// Go's `Writer.format`: lay out lines `from..to`, given the widths of the columns to the left.
fn format(lines: &[Vec<&str>], from: usize, to: usize, widths: &mut Vec<usize>, out: &mut String) {
    let column = widths.len();
    let mut printed = from;
    let mut this = from;
    while this < to {
        if column + 1 >= lines[this].len() {
            this += 1;
            continue;
        }
        // A block of lines with a cell in this column starts here.
        write_lines(lines, printed, this, widths, out);
        let start = this;
        let mut w = MIN_WIDTH;
        while this < to && column + 1 < lines[this].len() {
            w = w.max(width(lines[this][column]) + PADDING);
            this += 1;
        }
        widths.push(w);
        format(lines, start, this, widths, out);
        widths.pop();
        printed = this;
    }
    write_lines(lines, printed, to, widths, out);
}

fn write_lines(lines: &[Vec<&str>], from: usize, to: usize, widths: &[usize], out: &mut String) {
    for line in &lines[from..to] {
        for (j, cell) in line.iter().enumerate() {
            out.push_str(cell);
            if j + 1 < line.len() {
                let w = widths.get(j).copied().unwrap_or(0);
                for _ in width(cell)..w {
                    out.push(' ');
                }
            }
        }
        out.push('\n');
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
}
