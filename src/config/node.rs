//! The parsed documents: one [`Node`] view over a JSON value (`mcp.json`)
//! and a TOML value (`recipes.toml`, `inferencers.toml`).
//!
//! It exists so that the walks that do not care which format a file is in —
//! the `${VAR}` expansion (`expand`) and the typed key readers (`fields`) —
//! are written once instead of once per format. The kind names ("a string",
//! "an integer", …) are what every "expected X, found Y" message says.

use super::diagnostics::Diagnostics;
use super::expand::KeyPath;

/// What the config walks need from a document value.
pub trait Node: Sized + 'static {
    /// The table type: `serde_json::Map` or `toml::Table`.
    type Map;

    /// A short name for the value's type, for "expected X, found Y".
    fn kind(&self) -> &'static str;
    fn text(&self) -> Option<&str>;
    fn items(&self) -> Option<&[Self]>;
    fn table(&self) -> Option<&Self::Map>;
    /// The value for `key` of a table.
    fn get<'m>(map: &'m Self::Map, key: &str) -> Option<&'m Self>;
    /// A table's entries, in file order.
    fn entries(map: &Self::Map) -> impl Iterator<Item = (&String, &Self)>;
    /// The value, opened for the in-place `${VAR}` expansion.
    fn open(&mut self) -> Open<'_, Self>;
    fn entries_mut(map: &mut Self::Map) -> impl Iterator<Item = (&String, &mut Self)>;
}

/// A value opened for writing: the string to expand, or what to walk into.
pub enum Open<'a, V: Node> {
    Text(&'a mut String),
    Items(&'a mut [V]),
    Table(&'a mut V::Map),
    Leaf,
}

/// The methods whose code is the same for both value types (their APIs
/// agree on these names).
macro_rules! same_api {
    () => {
        fn text(&self) -> Option<&str> {
            self.as_str()
        }
        fn items(&self) -> Option<&[Self]> {
            self.as_array().map(Vec::as_slice)
        }
        fn get<'m>(map: &'m Self::Map, key: &str) -> Option<&'m Self> {
            map.get(key)
        }
        fn entries(map: &Self::Map) -> impl Iterator<Item = (&String, &Self)> {
            map.iter()
        }
        fn entries_mut(map: &mut Self::Map) -> impl Iterator<Item = (&String, &mut Self)> {
            map.iter_mut()
        }
    };
}

impl Node for serde_json::Value {
    type Map = serde_json::Map<String, Self>;

    fn kind(&self) -> &'static str {
        match self {
            Self::Null => "null",
            Self::Bool(_) => "a boolean",
            Self::Number(_) => "a number",
            Self::String(_) => "a string",
            Self::Array(_) => "an array",
            Self::Object(_) => "an object",
        }
    }
    same_api!();
    fn table(&self) -> Option<&Self::Map> {
        self.as_object()
    }
    fn open(&mut self) -> Open<'_, Self> {
        match self {
            Self::String(s) => Open::Text(s),
            Self::Array(items) => Open::Items(items),
            Self::Object(map) => Open::Table(map),
            Self::Null | Self::Bool(_) | Self::Number(_) => Open::Leaf,
        }
    }
}

impl Node for toml::Value {
    type Map = toml::Table;

    fn kind(&self) -> &'static str {
        match self {
            Self::String(_) => "a string",
            Self::Integer(_) => "an integer",
            Self::Float(_) => "a float",
            Self::Boolean(_) => "a boolean",
            Self::Datetime(_) => "a datetime",
            Self::Array(_) => "an array",
            Self::Table(_) => "a table",
        }
    }
    same_api!();
    fn table(&self) -> Option<&Self::Map> {
        self.as_table()
    }
    fn open(&mut self) -> Open<'_, Self> {
        match self {
            Self::String(s) => Open::Text(s),
            Self::Array(items) => Open::Items(items),
            Self::Table(map) => Open::Table(map),
            Self::Integer(_) | Self::Float(_) | Self::Boolean(_) | Self::Datetime(_) => Open::Leaf,
        }
    }
}

/// Parses a TOML file, or reports it as fatal.
pub fn parse_toml(text: &str, file: &str, diags: &mut Diagnostics) -> Option<toml::Table> {
    toml::from_str(text)
        .map_err(|e| {
            diags.fatal(
                file,
                &KeyPath::root(),
                format!("not valid TOML: {}", e.to_string().trim_end()),
            );
        })
        .ok()
}

/// Converts a TOML value to JSON, for values sent to a model (`params`,
/// `extra_body`, variable defaults). Datetimes become their TOML text.
pub fn toml_to_json(v: &toml::Value) -> serde_json::Value {
    use serde_json::Value as J;
    use toml::Value as T;
    match v {
        T::String(s) => J::String(s.clone()),
        T::Integer(i) => J::from(*i),
        T::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
        T::Boolean(b) => J::Bool(*b),
        T::Datetime(d) => J::String(d.to_string()),
        T::Array(a) => J::Array(a.iter().map(toml_to_json).collect()),
        T::Table(t) => J::Object(
            t.iter()
                .map(|(k, v)| (k.clone(), toml_to_json(v)))
                .collect(),
        ),
    }
}
