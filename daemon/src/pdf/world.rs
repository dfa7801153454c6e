//! The typst `World` a PDF is compiled in: one template as the main file, the view's data as
//! `/data.json`, the fonts embedded in the binary (typst-assets), and no file system, network
//! or package access at all.

use std::sync::LazyLock;
use typst::diag::{FileError, FileResult};
use typst::foundations::{Bytes, Datetime};
use typst::syntax::{FileId, RootedPath, Source, VirtualPath, VirtualRoot};
use typst::text::{Font, FontBook};
use typst::utils::LazyHash;
use typst::{Library, LibraryExt, World};

/// The embedded fonts, parsed once per process.
struct Fonts {
    fonts: Vec<Font>,
    book: LazyHash<FontBook>,
}

static FONTS: LazyLock<Fonts> = LazyLock::new(|| {
    let fonts: Vec<Font> = typst_assets::fonts().flat_map(|data| Font::iter(Bytes::new(data))).collect();
    let book = LazyHash::new(FontBook::from_fonts(&fonts));
    Fonts { fonts, book }
});

static LIBRARY: LazyLock<LazyHash<Library>> = LazyLock::new(|| LazyHash::new(Library::default()));

fn file_id(path: &str) -> FileId {
    let vpath = VirtualPath::new(path).expect("a fixed absolute path is a valid virtual path");
    RootedPath::new(VirtualRoot::Project, vpath).intern()
}

/// One compilation's world.
pub struct Doc {
    main: Source,
    data_id: FileId,
    data: Bytes,
    today: Option<Datetime>,
}

impl Doc {
    pub fn new(template: &str, data: Vec<u8>, today: Option<Datetime>) -> Doc {
        Doc { main: Source::new(file_id("/main.typ"), template.to_string()), data_id: file_id("/data.json"), data: Bytes::new(data), today }
    }

    /// The template line a byte offset falls on (1-based), for an error message.
    pub fn line_of(&self, offset: usize) -> usize {
        self.main.text().get(..offset).map_or(0, |t| t.matches('\n').count() + 1)
    }
}

impl World for Doc {
    fn library(&self) -> &LazyHash<Library> {
        &LIBRARY
    }

    fn book(&self) -> &LazyHash<FontBook> {
        &FONTS.book
    }

    fn main(&self) -> FileId {
        self.main.id()
    }

    fn source(&self, id: FileId) -> FileResult<Source> {
        if id == self.main.id() { Ok(self.main.clone()) } else { Err(FileError::NotFound(id.vpath().get_with_slash().into())) }
    }

    fn file(&self, id: FileId) -> FileResult<Bytes> {
        if id == self.data_id {
            Ok(self.data.clone())
        } else if id == self.main.id() {
            Ok(Bytes::from_string(self.main.text().to_string()))
        } else {
            Err(FileError::NotFound(id.vpath().get_with_slash().into()))
        }
    }

    fn font(&self, index: usize) -> Option<Font> {
        FONTS.fonts.get(index).cloned()
    }

    fn today(&self, _offset: Option<typst::foundations::Duration>) -> Option<Datetime> {
        self.today
    }
}

/// Makes every string in `value` drawable: line ends become `\n`, tabs stay, and any other
/// character no embedded font has (an emoji, a control character) becomes `[U+XXXX]`, so the
/// reader sees that something was there and what.
pub fn drawable(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::String(s) if s.chars().any(|c| !is_drawable(c)) => *s = drawable_text(s),
        serde_json::Value::Array(items) => items.iter_mut().for_each(drawable),
        serde_json::Value::Object(map) => map.values_mut().for_each(drawable),
        _ => {}
    }
}

fn is_drawable(c: char) -> bool {
    c == '\n' || c == '\t' || (!c.is_control() && FONTS.fonts.iter().any(|f| f.info().coverage.contains(c as u32)))
}

fn drawable_text(s: &str) -> String {
    let s = s.replace("\r\n", "\n").replace('\r', "\n");
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if is_drawable(c) {
            out.push(c);
        } else if c == '\u{FE0F}' || c == '\u{200D}' {
            // Variation selectors and joiners only shape the character before them.
        } else {
            out.push_str(&format!("[U+{:04X}]", c as u32));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn undrawable_characters_are_named_and_the_rest_kept() {
        assert_eq!(drawable_text("café #strong[x] \\ 😀 ok"), "café #strong[x] \\ [U+1F600] ok");
        assert_eq!(drawable_text("a\r\nb\u{7}c"), "a\nb[U+0007]c");
        let mut v = serde_json::json!({"a": ["x\u{0}"], "b": 3});
        drawable(&mut v);
        assert_eq!(v, serde_json::json!({"a": ["x[U+0000]"], "b": 3}));
    }
}
