//! What a config error tells a technician beyond serde's words: the known keys of a section
//! (asked of the serde struct itself, so the list cannot drift from the code), the nearest
//! one to a misspelt key, and where in the file a TOML syntax error is. Pure.

use crate::rules::suggest::nearest;
use serde::de::{self, Deserialize, Visitor};

/// The keys a `#[derive(Deserialize)]` struct reads, as its derive lists them.
pub(super) fn struct_fields<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(FieldNames { fields: &mut fields });
    fields
}

/// A deserializer that only records the field list a struct asks for, then stops.
struct FieldNames<'a> {
    fields: &'a mut &'static [&'static str],
}

#[derive(Debug)]
struct Stop;

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("field names recorded")
    }
}

impl std::error::Error for Stop {}

impl de::Error for Stop {
    fn custom<M: std::fmt::Display>(_: M) -> Self {
        Stop
    }
}

impl<'de> de::Deserializer<'de> for FieldNames<'_> {
    type Error = Stop;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
        Err(Stop)
    }

    fn deserialize_struct<V: Visitor<'de>>(self, _: &'static str, fields: &'static [&'static str], _: V) -> Result<V::Value, Stop> {
        *self.fields = fields;
        Err(Stop)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
        unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
    }
}

/// "unknown key (did you mean "password_file"?)", or the keys the section knows.
pub(super) fn unknown_key(key: &str, known: &[&str]) -> String {
    let file = format!("{key}_file");
    if known.contains(&file.as_str()) {
        return format!(
            "unknown key: secrets are never written in haven.toml; name a file with {key}_file or an environment variable with {key}_env"
        );
    }
    match nearest(key, known.iter().copied()) {
        Some(k) => format!("unknown key (did you mean {k:?}?)"),
        None => format!("unknown key; this section knows {}", known.join(", ")),
    }
}

/// "unknown section (did you mean [school]?)", or the sections there are.
pub(super) fn unknown_section(key: &str, known: &[&str]) -> String {
    match nearest(key, known.iter().copied()) {
        Some(k) => format!("unknown section (did you mean [{k}]?)"),
        None => format!("unknown section; the sections are {}", known.iter().map(|k| format!("[{k}]")).collect::<Vec<_>>().join(", ")),
    }
}

/// "line 3, column 9: invalid string …": where the TOML stops making sense, counted from 1.
pub(super) fn syntax_error(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().split_whitespace().collect::<Vec<_>>().join(" ");
    let Some(span) = e.span() else {
        return format!("not valid TOML: {message}");
    };
    let before = &text[..span.start.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    format!("line {line}, column {column}: not valid TOML: {message}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    #[allow(dead_code)]
    struct Sample {
        host: String,
        #[serde(rename = "port_number")]
        port: u16,
    }

    #[test]
    fn a_structs_keys_come_from_its_derive() {
        assert_eq!(struct_fields::<Sample>(), ["host", "port_number"]);
        assert_eq!(unknown_key("hots", &["host", "port_number"]), "unknown key (did you mean \"host\"?)");
        assert_eq!(unknown_key("colour", &["host", "port_number"]), "unknown key; this section knows host, port_number");
        assert!(unknown_key("password", &["password_file", "password_env"]).contains("name a file with password_file"));
        assert_eq!(unknown_section("scool", &["school", "smtp"]), "unknown section (did you mean [school]?)");
    }

    #[test]
    fn syntax_errors_name_line_and_column() {
        let text = "[school]\nname = \"Eaton\nx = 1\n";
        let e = text.parse::<toml::Table>().unwrap_err();
        let m = syntax_error(text, &e);
        assert!(m.starts_with("line 2, column "), "{m}");
    }
}
