//! Plain-text tables for terminal reports, with colour only when the output is a terminal.
//!
//! Columns are padded by character count, and colour codes are added after
//! padding so they never disturb the alignment. This module knows nothing
//! about certificates; `check` and the plan diff fill it.

use std::fmt::Write as _;

/// How a row is highlighted on a terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    Plain,
    Good,
    Warning,
    Bad,
}

impl Tone {
    fn ansi(self) -> Option<&'static str> {
        match self {
            Tone::Plain => None,
            Tone::Good => Some("\x1b[32m"),
            Tone::Warning => Some("\x1b[33m"),
            Tone::Bad => Some("\x1b[31m"),
        }
    }
}

/// A table: a header row and rows of cells, each row with a tone.
#[derive(Debug, Clone, Default)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<(Vec<String>, Tone)>,
}

impl Table {
    pub fn new<I: IntoIterator<Item = S>, S: Into<String>>(header: I) -> Table {
        Table {
            header: header.into_iter().map(Into::into).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>, tone: Tone) {
        self.rows.push((cells, tone));
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Renders with three spaces between columns; `colour` adds ANSI colours per row.
    pub fn render(&self, colour: bool) -> String {
        let columns = self.header.len();
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for (cells, _) in &self.rows {
            for (i, cell) in cells.iter().enumerate().take(columns) {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let line = |out: &mut String, cells: &[String], tone: Tone| {
            let mut text = String::new();
            for (i, width) in widths.iter().enumerate() {
                let cell = cells.get(i).map(String::as_str).unwrap_or("");
                if i + 1 == columns {
                    text.push_str(cell);
                } else {
                    let _ = write!(text, "{cell:<width$}   ");
                }
            }
            let text = text.trim_end();
            match tone.ansi().filter(|_| colour) {
                Some(code) => {
                    let _ = writeln!(out, "{code}{text}\x1b[0m");
                }
                None => {
                    let _ = writeln!(out, "{text}");
                }
            }
        };
        line(&mut out, &self.header, Tone::Plain);
        for (cells, tone) in &self.rows {
            line(&mut out, cells, *tone);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligns_columns_and_colours_only_when_asked() {
        let mut table = Table::new(["A", "LONGER"]);
        table.row(vec!["wide cell".into(), "x".into()], Tone::Bad);
        assert_eq!(table.render(false), "A           LONGER\nwide cell   x\n");
        assert!(table.render(true).contains("\x1b[31mwide cell   x\x1b[0m"));
    }
}
