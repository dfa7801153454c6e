//! Categories: the school's configured kinds of incident (SPEC "Domain"), each with the
//! aliases staff use to name it (`#esafety`, `safeguarding+esafety@…`, `Category: E-safety`),
//! who may see it, and whether it is safeguarding. Loaded from `rules/` by `crate::rules`.

use crate::visibility::Visibility;

#[derive(Debug, Clone, PartialEq)]
pub struct Category {
    pub name: String,
    /// Lower-case, without `#`; matched against tags, plus addresses and `Category:` lines.
    pub aliases: Vec<String>,
    pub visibility: Visibility,
    pub safeguarding: bool,
}

/// The configured categories and the catch-all default.
#[derive(Debug, Clone, PartialEq)]
pub struct Categories {
    list: Vec<Category>,
    default: usize,
}

/// Folds a name for comparison: lower-case, letters and digits only ("E-safety" = "esafety").
pub fn fold(s: &str) -> String {
    s.chars().filter(|c| c.is_alphanumeric()).flat_map(char::to_lowercase).collect()
}

impl Categories {
    /// `default` must name one of `list`.
    pub fn new(list: Vec<Category>, default: &str) -> Option<Categories> {
        let default = list.iter().position(|c| fold(&c.name) == fold(default))?;
        Some(Categories { list, default })
    }

    /// A category by name or alias, ignoring case, spaces and punctuation.
    pub fn find(&self, name_or_alias: &str) -> Option<&Category> {
        let key = fold(name_or_alias);
        if key.is_empty() {
            return None;
        }
        self.list.iter().find(|c| fold(&c.name) == key).or_else(|| self.list.iter().find(|c| c.aliases.iter().any(|a| fold(a) == key)))
    }

    /// The catch-all category (Pastoral issue in the shipped rules).
    pub fn default_category(&self) -> &Category {
        &self.list[self.default]
    }

    pub fn iter(&self) -> impl Iterator<Item = &Category> {
        self.list.iter()
    }
}
