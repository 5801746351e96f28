use serde::Deserialize;

/// An API extension, for feature detection (`GET /v2.0/extensions`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Extension {
    pub alias: String,
    pub name: String,
    pub description: String,
    pub updated: String,
}
