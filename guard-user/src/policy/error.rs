//! Policy errors that point at the offending text: `file:line:col: message`, then the line
//! with the span underlined.

use std::{fmt, io, ops::Range, path::PathBuf};

/// A policy's text and the name it is reported under.
#[derive(Clone, Debug)]
pub struct Source {
    /// How the file is named in messages (the path as the operator gave it).
    pub name: String,
    pub text: String,
}

/// A 1-based position in a policy file. Columns count characters, not bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct Location {
    pub line: usize,
    pub col: usize,
}

impl Source {
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            text: text.into(),
        }
    }

    /// Line and column of a byte offset (clamped to the text, snapped to a char boundary).
    pub fn locate(&self, offset: usize) -> Location {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let col = self.text[line_start..offset].chars().count() + 1;
        Location { line, col }
    }

    /// A diagnostic for a byte span of this source.
    pub fn diagnostic(&self, span: Range<usize>, message: impl Into<String>) -> Diagnostic {
        let start = self.locate(span.start);
        let line_text = self
            .text
            .lines()
            .nth(start.line - 1)
            .unwrap_or_default()
            .to_owned();
        let end = self.locate(span.end.max(span.start));
        let width = if end.line == start.line {
            end.col.saturating_sub(start.col).max(1)
        } else {
            line_text
                .chars()
                .count()
                .saturating_sub(start.col - 1)
                .max(1)
        };
        Diagnostic {
            file: self.name.clone(),
            location: start,
            message: message.into(),
            line_text,
            width,
        }
    }
}

/// One problem in a policy, with where it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: String,
    pub location: Location,
    pub message: String,
    /// The whole line the problem starts on.
    pub line_text: String,
    /// Characters to underline from the column on.
    pub width: usize,
}

impl Diagnostic {
    pub fn line(&self) -> usize {
        self.location.line
    }

    pub fn col(&self) -> usize {
        self.location.col
    }

    /// The one-line form followed by the offending line, underlined:
    ///
    /// ```text
    /// policy.toml:3:8: unknown variant `block`, expected `enforce` or `audit`
    ///   3 | mode = "block"
    ///     |        ^^^^^^^
    /// ```
    pub fn render(&self) -> String {
        let number = self.location.line.to_string();
        let gutter = " ".repeat(number.len());
        let text = self.line_text.replace('\t', " ");
        format!(
            "{self}\n  {number} | {text}\n  {gutter} | {}{}",
            " ".repeat(self.location.col - 1),
            "^".repeat(self.width)
        )
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.location.line, self.location.col, self.message
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("cannot read policy {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The policy is not valid; every problem found, in file order.
    #[error("{}", .0.first().map(ToString::to_string).unwrap_or_default())]
    Invalid(Vec<Diagnostic>),
}

impl PolicyError {
    /// The problems with their snippets, one block each.
    pub fn render(&self) -> String {
        match self {
            PolicyError::Invalid(diagnostics) => diagnostics
                .iter()
                .map(Diagnostic::render)
                .collect::<Vec<_>>()
                .join("\n"),
            other => other.to_string(),
        }
    }

    pub fn diagnostics(&self) -> &[Diagnostic] {
        match self {
            PolicyError::Invalid(d) => d,
            PolicyError::Read { .. } => &[],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locates_lines_and_character_columns() {
        let src = Source::new("p.toml", "a = 1\nname = \"é\" x\n");
        assert_eq!(src.locate(0), Location { line: 1, col: 1 });
        assert_eq!(src.locate(6), Location { line: 2, col: 1 });
        // After the two-byte é: character column, not byte column.
        let x = src.text.find(" x").unwrap() + 1;
        assert_eq!(src.locate(x), Location { line: 2, col: 12 });
        assert_eq!(src.locate(10_000).line, 3);
    }

    #[test]
    fn renders_the_line_with_a_caret() {
        let src = Source::new("p.toml", "env = \"x\"\nmode = \"block\"\n");
        let start = src.text.find("\"block\"").unwrap();
        let d = src.diagnostic(start..start + 7, "unknown mode");
        assert_eq!(d.to_string(), "p.toml:2:8: unknown mode");
        assert_eq!(
            d.render(),
            "p.toml:2:8: unknown mode\n  2 | mode = \"block\"\n    |        ^^^^^^^"
        );
    }
}
