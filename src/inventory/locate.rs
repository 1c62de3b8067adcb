//! Maps between field paths (`nodes[1].addresses.lan[0]`) and places in the TOML source.
//!
//! serde gives typed values but forgets where they came from; toml_edit keeps
//! spans. Validation names fields by path and this module finds them again,
//! so the typed structs stay free of span wrappers.

use std::fmt;
use std::ops::Range;

use toml_edit::{Document, Item, Value};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Key(String),
    Index(usize),
}

/// A path from the document root to a field.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldPath(pub Vec<Segment>);

impl FieldPath {
    pub fn root() -> Self {
        FieldPath(Vec::new())
    }

    pub fn key(&self, key: &str) -> Self {
        let mut next = self.clone();
        next.0.push(Segment::Key(key.to_string()));
        next
    }

    pub fn index(&self, index: usize) -> Self {
        let mut next = self.clone();
        next.0.push(Segment::Index(index));
        next
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Parses `a.b[2].c`, for naming a field by hand.
    #[cfg(test)]
    pub fn parse(text: &str) -> Self {
        let mut path = FieldPath::root();
        for part in text.split('.') {
            let (key, rest) = part.split_once('[').unwrap_or((part, ""));
            if !key.is_empty() {
                path = path.key(key);
            }
            for index in rest.split('[') {
                if let Ok(i) = index.trim_end_matches(']').parse() {
                    path = path.index(i);
                }
            }
        }
        path
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Key(k) if i == 0 => write!(f, "{k}")?,
                Segment::Key(k) => write!(f, ".{k}")?,
                Segment::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// The byte offset where the field's value starts, or of the nearest enclosing field that exists.
pub fn span_of(source: &str, path: &FieldPath) -> Option<usize> {
    let doc = Document::parse(source).ok()?;
    let mut at = At::Table(doc.as_table());
    let mut best = None;
    for segment in &path.0 {
        let next = match (segment, at) {
            (Segment::Key(k), At::Table(t) | At::Item(Item::Table(t))) => {
                best = t
                    .key(k)
                    .and_then(|key| key.span())
                    .map(|s| s.start)
                    .or(best);
                t.get(k).map(At::Item)
            }
            (
                Segment::Key(k),
                At::Item(Item::Value(Value::InlineTable(t))) | At::Value(Value::InlineTable(t)),
            ) => {
                best = t
                    .key(k)
                    .and_then(|key| key.span())
                    .map(|s| s.start)
                    .or(best);
                t.get(k).map(At::Value)
            }
            (Segment::Index(n), At::Item(Item::ArrayOfTables(a))) => a.get(*n).map(At::Table),
            (
                Segment::Index(n),
                At::Item(Item::Value(Value::Array(a))) | At::Value(Value::Array(a)),
            ) => a.get(*n).map(At::Value),
            _ => None,
        };
        match next {
            Some(found) => {
                best = found.span().map(|s| s.start).or(best);
                at = found;
            }
            None => return best,
        }
    }
    best
}

/// A place in the document: toml_edit distinguishes tables, items and inline values.
#[derive(Clone, Copy)]
enum At<'a> {
    Table(&'a toml_edit::Table),
    Item(&'a Item),
    Value(&'a Value),
}

impl At<'_> {
    fn span(self) -> Option<Range<usize>> {
        match self {
            At::Table(t) => t.span(),
            At::Item(i) => i.span(),
            At::Value(v) => v.span(),
        }
    }
}

/// The deepest field whose value contains `offset`, for errors serde reports by span only.
pub fn field_at(source: &str, offset: usize) -> Option<FieldPath> {
    let doc = Document::parse(source).ok()?;
    let mut path = FieldPath::root();
    walk_table(doc.as_table(), offset, &mut path);
    Some(path)
}

fn contains(span: Option<Range<usize>>, offset: usize) -> bool {
    span.is_some_and(|s| s.start <= offset && offset < s.end.max(s.start + 1))
}

fn walk_table(table: &toml_edit::Table, offset: usize, path: &mut FieldPath) -> bool {
    for (key, item) in table.iter() {
        let key_span = table.key(key).and_then(|k| k.span());
        if contains(key_span, offset) {
            *path = path.key(key);
            return true;
        }
        let here = path.key(key);
        match item {
            Item::Table(t) => {
                let mut sub = here.clone();
                if walk_table(t, offset, &mut sub) {
                    *path = sub;
                    return true;
                }
            }
            Item::ArrayOfTables(a) => {
                for (i, t) in a.iter().enumerate() {
                    let mut sub = here.index(i);
                    if walk_table(t, offset, &mut sub) {
                        *path = sub;
                        return true;
                    }
                }
            }
            Item::Value(v) => {
                if contains(v.span(), offset) {
                    let mut sub = here.clone();
                    walk_value(v, offset, &mut sub);
                    *path = sub;
                    return true;
                }
            }
            Item::None => {}
        }
    }
    false
}

fn walk_value(value: &Value, offset: usize, path: &mut FieldPath) {
    match value {
        Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                if contains(v.span(), offset) {
                    *path = path.index(i);
                    walk_value(v, offset, path);
                    return;
                }
            }
        }
        Value::InlineTable(t) => {
            for (k, v) in t.iter() {
                if contains(v.span(), offset) || contains(t.key(k).and_then(|k| k.span()), offset) {
                    *path = path.key(k);
                    walk_value(v, offset, path);
                    return;
                }
            }
        }
        _ => {}
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(source.len());
    let before = &source[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = source[line_start..offset].chars().count() + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOURCE: &str = "[cluster]\nname = \"x\"\n\n[[nodes]]\nname = \"a\"\naddresses = { lan = [\"10.0.0.1\", \"10.0.0.2\"] }\n";

    #[test]
    fn finds_a_value_inside_an_inline_table_of_an_array_of_tables() {
        let at = span_of(SOURCE, &FieldPath::parse("nodes[0].addresses.lan[1]")).unwrap();
        assert_eq!(line_col(SOURCE, at), (6, 34));
    }

    #[test]
    fn maps_an_offset_back_to_its_field() {
        let offset = SOURCE.find("10.0.0.2").unwrap();
        assert_eq!(
            field_at(SOURCE, offset).unwrap().to_string(),
            "nodes[0].addresses.lan[1]"
        );
    }

    #[test]
    fn falls_back_to_the_nearest_existing_field() {
        let at = span_of(SOURCE, &FieldPath::parse("nodes[0].roles")).unwrap();
        assert_eq!(line_col(SOURCE, at).0, 4);
    }
}
