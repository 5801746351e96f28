//! List filters: what `GET /v2.0/<resources>?...` is asked for. Building the query does no IO.

use crate::error::{Error, Result};

/// Sort direction for [`Filters::sort`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Asc,
    Desc,
}

/// Query filters for a Neutron list call.
///
/// ```
/// use kuryr_openstack::neutron::Filters;
/// let f = Filters::new().eq("network_id", "n1").tags(["a", "b"]).fields(["id", "name"]);
/// assert_eq!(f.to_query_string().unwrap(), "network_id=n1&fields=id&fields=name&tags=a%2Cb");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters {
    pairs: Vec<(String, String)>,
    tags: Vec<String>,
    tags_any: Vec<String>,
    not_tags: Vec<String>,
    not_tags_any: Vec<String>,
    limit: Option<u32>,
}

impl Filters {
    pub fn new() -> Self {
        Self::default()
    }

    /// `key=value`; may be repeated (Neutron then matches any of the values, or, for
    /// `fixed_ips`, all of the conditions).
    pub fn eq(mut self, key: &str, value: impl Into<String>) -> Self {
        self.pairs.push((key.to_owned(), value.into()));
        self
    }

    /// Resources that carry all these tags.
    pub fn tags<S: Into<String>>(mut self, tags: impl IntoIterator<Item = S>) -> Self {
        self.tags.extend(tags.into_iter().map(Into::into));
        self
    }

    /// Resources that carry at least one of these tags.
    pub fn tags_any<S: Into<String>>(mut self, tags: impl IntoIterator<Item = S>) -> Self {
        self.tags_any.extend(tags.into_iter().map(Into::into));
        self
    }

    /// Resources that do not carry all of these tags.
    pub fn not_tags<S: Into<String>>(mut self, tags: impl IntoIterator<Item = S>) -> Self {
        self.not_tags.extend(tags.into_iter().map(Into::into));
        self
    }

    /// Resources that carry none of these tags.
    pub fn not_tags_any<S: Into<String>>(mut self, tags: impl IntoIterator<Item = S>) -> Self {
        self.not_tags_any.extend(tags.into_iter().map(Into::into));
        self
    }

    /// Only return these fields (others come back empty in the typed result).
    pub fn fields<S: Into<String>>(mut self, fields: impl IntoIterator<Item = S>) -> Self {
        for field in fields {
            self.pairs.push(("fields".into(), field.into()));
        }
        self
    }

    /// Page size: the list is fetched `limit` items at a time, following the next links.
    pub fn limit(mut self, limit: u32) -> Self {
        self.limit = Some(limit);
        self
    }

    pub fn sort(mut self, key: &str, direction: Direction) -> Self {
        self.pairs.push(("sort_key".into(), key.into()));
        let dir = match direction {
            Direction::Asc => "asc",
            Direction::Desc => "desc",
        };
        self.pairs.push(("sort_dir".into(), dir.into()));
        self
    }

    /// The query pairs, in order.
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] for a tag that contains a comma (the tag filters are
    /// comma-separated lists) or is empty.
    pub fn to_pairs(&self) -> Result<Vec<(String, String)>> {
        let mut out = self.pairs.clone();
        for (key, tags) in [
            ("tags", &self.tags),
            ("tags-any", &self.tags_any),
            ("not-tags", &self.not_tags),
            ("not-tags-any", &self.not_tags_any),
        ] {
            if tags.is_empty() {
                continue;
            }
            for tag in tags {
                validate_tag(tag)?;
            }
            out.push((key.to_owned(), tags.join(",")));
        }
        if let Some(limit) = self.limit {
            out.push(("limit".into(), limit.to_string()));
        }
        Ok(out)
    }

    pub fn page_size(&self) -> Option<u32> {
        self.limit
    }

    /// The encoded query string (for logs and tests).
    pub fn to_query_string(&self) -> Result<String> {
        let pairs = self.to_pairs()?;
        let mut ser = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in &pairs {
            ser.append_pair(k, v);
        }
        Ok(ser.finish())
    }
}

/// Neutron tags: 1 to 255 characters, no comma (tag filters are comma-separated lists).
pub fn validate_tag(tag: &str) -> Result<()> {
    if tag.is_empty() || tag.chars().count() > 255 || tag.contains(',') {
        return Err(Error::InvalidRequest(format!(
            "tag {tag:?} must have 1 to 255 characters and no comma"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_filters_are_joined_and_named_as_neutron_expects() {
        let q = Filters::new()
            .tags(["kuryr.net.uuid.lh:abc", "kuryr.net.uuid.uh:def"])
            .tags_any(["x"])
            .not_tags(["y", "z"])
            .not_tags_any(["w"])
            .to_pairs()
            .unwrap();
        assert_eq!(
            q,
            vec![
                (
                    "tags".into(),
                    "kuryr.net.uuid.lh:abc,kuryr.net.uuid.uh:def".into()
                ),
                ("tags-any".into(), "x".into()),
                ("not-tags".into(), "y,z".into()),
                ("not-tags-any".into(), "w".into()),
            ]
        );
    }

    #[test]
    fn repeated_keys_and_colon_names_survive_encoding() {
        let q = Filters::new()
            .eq("fixed_ips", "subnet_id=s1")
            .eq("fixed_ips", "ip_address=10.0.0.5")
            .eq("binding:host_id", "node-1")
            .eq("device_owner", "compute:kuryr")
            .limit(2)
            .sort("id", Direction::Desc)
            .to_query_string()
            .unwrap();
        assert_eq!(
            q,
            "fixed_ips=subnet_id%3Ds1&fixed_ips=ip_address%3D10.0.0.5&binding%3Ahost_id=node-1\
             &device_owner=compute%3Akuryr&sort_key=id&sort_dir=desc&limit=2"
        );
    }

    #[test]
    fn bad_tags_are_refused_before_sending() {
        assert!(Filters::new().tags(["a,b"]).to_pairs().is_err());
        assert!(Filters::new().not_tags([""]).to_pairs().is_err());
        assert!(validate_tag(&"t".repeat(256)).is_err());
        assert!(validate_tag("kuryr.port.existing").is_ok());
    }
}
