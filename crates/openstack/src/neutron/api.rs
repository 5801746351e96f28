//! The generic resource API: get, list (every page), create (one or in bulk), update (with an
//! optional revision check), delete, and tags, for any [`Resource`].

use std::marker::PhantomData;

use reqwest::header::HeaderValue;
use reqwest::Method;
use std::collections::HashMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{json, Value};

use super::filters::{validate_tag, Filters};
use super::Neutron;
use crate::error::{Error, Result, Service};
use crate::session::Request;

/// A Neutron resource type: its JSON keys and URL collection.
pub trait Resource: DeserializeOwned + Send + Sync + 'static {
    /// JSON key of one item, e.g. `port`.
    const SINGULAR: &'static str;
    /// JSON key of a list, e.g. `ports`.
    const PLURAL: &'static str;
    /// URL collection below `v2.0/`, e.g. `ports` or `security-groups`.
    const COLLECTION: &'static str;
    /// The fields a caller sets on create and update; unset (`None`) fields are not sent.
    type Spec: Serialize + Send + Sync;
}

/// A resource that carries Neutron tags (`standard-attr-tag`).
pub trait Taggable: Resource {}

/// Typed access to one collection of a Neutron.
pub struct Api<R> {
    neutron: Neutron,
    /// Collection path below `v2.0/` (nested collections include their parent).
    collection: String,
    _marker: PhantomData<fn() -> R>,
}

impl<R> Clone for Api<R> {
    fn clone(&self) -> Self {
        Api {
            neutron: self.neutron.clone(),
            collection: self.collection.clone(),
            _marker: PhantomData,
        }
    }
}

/// An id that can be put into a URL path: letters, digits, `-`, `_` and `.` only, and not a
/// dot segment (`.` or `..` would make the URL point at the parent resource).
pub(crate) fn check_id(id: &str) -> Result<&str> {
    let charset_ok = id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if id.is_empty() || id.len() > 255 || !charset_ok || id == "." || id == ".." {
        return Err(Error::InvalidRequest(format!(
            "{id:?} is not a valid resource id"
        )));
    }
    Ok(id)
}

/// Everything but RFC 3986's unreserved characters is percent-encoded in a path segment.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

fn encode_segment(value: &str) -> String {
    percent_encoding::utf8_percent_encode(value, SEGMENT).to_string()
}

impl<R: Resource> Api<R> {
    pub(crate) fn new(neutron: Neutron, collection: String) -> Self {
        Api {
            neutron,
            collection,
            _marker: PhantomData,
        }
    }

    fn item_path(&self, id: &str) -> Result<String> {
        Ok(format!("v2.0/{}/{}", self.collection, check_id(id)?))
    }

    fn collection_path(&self) -> String {
        format!("v2.0/{}", self.collection)
    }

    /// `GET /v2.0/<collection>/<id>`.
    ///
    /// # Errors
    /// [`Error::Api`] with status 404 when it does not exist (see [`Api::get_opt`]).
    pub async fn get(&self, id: &str) -> Result<R> {
        let path = self.item_path(id)?;
        let value = self
            .neutron
            .call(Request::new(Method::GET, path.clone()))
            .await?;
        take_key(&value, R::SINGULAR, &path)
    }

    /// Like [`Api::get`], with `None` for a resource that does not exist.
    pub async fn get_opt(&self, id: &str) -> Result<Option<R>> {
        match self.get(id).await {
            Ok(r) => Ok(Some(r)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every item that matches `filters`, following Neutron's next links page by page.
    pub async fn list(&self, filters: &Filters) -> Result<Vec<R>> {
        let path = self.collection_path();
        let mut query = filters.to_pairs()?;
        let mut items = Vec::new();
        let mut seen_markers = std::collections::HashSet::new();
        loop {
            let body = self
                .neutron
                .call(Request::new(Method::GET, path.clone()).query(query.clone()))
                .await?;
            let answer = Answer::parse(&body, &path)?;
            let next = answer.next_page(R::PLURAL);
            let page: Vec<R> = answer.take(R::PLURAL)?;
            let page_len = page.len();
            items.extend(page);
            match next {
                Some(next) if page_len > 0 => {
                    let marker = next
                        .iter()
                        .find(|(k, _)| k == "marker")
                        .map(|(_, v)| v.clone());
                    if !seen_markers.insert(marker) {
                        return Err(Error::Protocol {
                            service: Service::Neutron,
                            message: format!(
                                "the next link of {path} points back to a page already read"
                            ),
                        });
                    }
                    query = next;
                }
                _ => return Ok(items),
            }
        }
    }

    /// `POST /v2.0/<collection>` with one item.
    pub async fn create(&self, spec: &R::Spec) -> Result<R> {
        let path = self.collection_path();
        let body = self.neutron.with_project(to_value(spec)?);
        let value = self
            .neutron
            .call(Request::new(Method::POST, path.clone()).json(json!({ R::SINGULAR: body })))
            .await?;
        take_key(&value, R::SINGULAR, &path)
    }

    /// `POST /v2.0/<collection>` with many items in one request (all or none are created).
    pub async fn create_bulk(&self, specs: &[R::Spec]) -> Result<Vec<R>> {
        if specs.is_empty() {
            return Ok(Vec::new());
        }
        let path = self.collection_path();
        let mut bodies = Vec::with_capacity(specs.len());
        for spec in specs {
            bodies.push(self.neutron.with_project(to_value(spec)?));
        }
        let value = self
            .neutron
            .call(Request::new(Method::POST, path.clone()).json(json!({ R::PLURAL: bodies })))
            .await?;
        take_key(&value, R::PLURAL, &path)
    }

    /// `PUT /v2.0/<collection>/<id>` with the fields set in `spec`.
    pub async fn update(&self, id: &str, spec: &R::Spec) -> Result<R> {
        self.update_inner(id, spec, None).await
    }

    /// Update only if the resource is still at `revision_number` (`If-Match`), so concurrent
    /// read-modify-write cycles never lose a change.
    ///
    /// # Errors
    /// An [`Error::Api`] with status 412 ([`Error::is_precondition_failed`]) when someone else
    /// changed it first: read it again and retry.
    pub async fn update_if_revision(
        &self,
        id: &str,
        spec: &R::Spec,
        revision_number: u64,
    ) -> Result<R> {
        self.update_inner(id, spec, Some(revision_number)).await
    }

    async fn update_inner(&self, id: &str, spec: &R::Spec, revision: Option<u64>) -> Result<R> {
        let path = self.item_path(id)?;
        let mut req =
            Request::new(Method::PUT, path.clone()).json(json!({ R::SINGULAR: to_value(spec)? }));
        if let Some(rev) = revision {
            let value = HeaderValue::from_str(&format!("revision_number={rev}"))
                .map_err(|e| Error::InvalidRequest(e.to_string()))?;
            // A resend after a lost answer would fail the check against our own change.
            req = req.header("If-Match", value).not_idempotent();
        }
        let body = self.neutron.call(req).await?;
        take_key(&body, R::SINGULAR, &path)
    }

    /// `DELETE /v2.0/<collection>/<id>`. Returns `false` when it was already gone.
    pub async fn delete(&self, id: &str) -> Result<bool> {
        match self
            .neutron
            .call(Request::new(Method::DELETE, self.item_path(id)?))
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// `POST` one item that `marks` finds once made (e.g. its name and a description no other
    /// caller gives at the same moment), for resources Neutron takes no tags for in a `POST`.
    /// A lost answer is looked up by `marks` before the request is sent again, as in
    /// [`Self::create_once`]; `pick` chooses among what `marks` lists the item this call
    /// made (e.g. the newest), or none.
    ///
    /// # Errors
    /// As [`Self::create_once`].
    pub async fn create_once_found_by(
        &self,
        spec: &R::Spec,
        marks: &Filters,
        pick: impl Fn(Vec<R>) -> Option<R>,
    ) -> Result<R> {
        let opts = self.neutron.session().options().clone();
        let started = std::time::Instant::now();
        let mut attempt = 0u32;
        loop {
            let err = match self.create(spec).await {
                Ok(item) => return Ok(item),
                Err(e) if e.may_have_acted(&opts.retriable_statuses) => e,
                Err(e) => return Err(e),
            };
            if let Some(item) = pick(self.list(marks).await?) {
                tracing::info!(
                    "the answer to a {} create was lost ({}); Neutron had made it",
                    R::SINGULAR,
                    crate::error::chain(&err)
                );
                return Ok(item);
            }
            let delay = crate::transport::backoff(opts.retry_delay, attempt);
            if attempt >= opts.retries || started.elapsed() + delay >= opts.retry_timeout {
                return Err(err);
            }
            tracing::warn!(
                attempt,
                "{} create failed and was not made ({}); sending it again in {delay:?}",
                R::SINGULAR,
                crate::error::chain(&err)
            );
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }
}

impl<R: Taggable> Api<R> {
    fn tag_path(&self, id: &str, tag: &str) -> Result<String> {
        validate_tag(tag)?;
        // Percent-encoding does not help: URL parsers treat %2e like a dot.
        if tag == "." || tag == ".." {
            return Err(Error::InvalidRequest(format!(
                "tag {tag:?} cannot be used in a URL path"
            )));
        }
        Ok(format!(
            "{}/tags/{}",
            self.item_path(id)?,
            encode_segment(tag)
        ))
    }

    /// Add one tag (`PUT .../tags/<tag>`); adding a tag that is there already is fine.
    pub async fn add_tag(&self, id: &str, tag: &str) -> Result<()> {
        self.neutron
            .call(Request::new(Method::PUT, self.tag_path(id, tag)?))
            .await
            .map(drop)
    }

    /// Remove one tag; returns `false` when it was not there.
    pub async fn remove_tag(&self, id: &str, tag: &str) -> Result<bool> {
        match self
            .neutron
            .call(Request::new(Method::DELETE, self.tag_path(id, tag)?))
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Replace all tags (`PUT .../tags`); returns the tags Neutron now has.
    pub async fn replace_tags(&self, id: &str, tags: &[String]) -> Result<Vec<String>> {
        for tag in tags {
            validate_tag(tag)?;
        }
        let path = format!("{}/tags", self.item_path(id)?);
        let body = self
            .neutron
            .call(Request::new(Method::PUT, path.clone()).json(json!({ "tags": tags })))
            .await?;
        take_key(&body, "tags", &path)
    }

    /// `POST` one item whose spec carries `request_tag`, a tag no other request uses. When the
    /// answer is lost, times out or is a retriable error status, Neutron may have made the item
    /// all the same: it is looked up by that tag before the request is sent again, so a lost
    /// answer never makes a second item. Resent within the session's retry bounds.
    ///
    /// # Errors
    /// The last failure, when the item was not made within those bounds or the lookup
    /// failed (then whether it was made is unknown: the tag finds it later).
    pub async fn create_once(&self, spec: &R::Spec, request_tag: &str) -> Result<R> {
        validate_tag(request_tag)?;
        self.create_once_found_by(spec, &Filters::new().tags([request_tag]), |mut found| {
            found.pop()
        })
        .await
    }

    /// The tags of one resource.
    pub async fn tags(&self, id: &str) -> Result<Vec<String>> {
        let path = format!("{}/tags", self.item_path(id)?);
        let value = self
            .neutron
            .call(Request::new(Method::GET, path.clone()))
            .await?;
        take_key(&value, "tags", &path)
    }
}

pub(crate) fn to_value<T: Serialize>(spec: &T) -> Result<Value> {
    serde_json::to_value(spec).map_err(|e| Error::InvalidRequest(e.to_string()))
}

/// A JSON answer split into its top-level members, once; each member is then parsed straight
/// into its type (numbers above `u64`, such as IPv6 address counts, survive).
pub(crate) struct Answer<'a> {
    members: HashMap<String, &'a RawValue>,
    path: &'a str,
}

impl<'a> Answer<'a> {
    pub(crate) fn parse(body: &'a [u8], path: &'a str) -> Result<Self> {
        let members = serde_json::from_slice(body).map_err(|source| Error::Decode {
            service: Service::Neutron,
            path: path.to_owned(),
            source: std::sync::Arc::new(source),
        })?;
        Ok(Answer { members, path })
    }

    /// Deserialize the member `key`.
    pub(crate) fn take<T: DeserializeOwned>(&self, key: &str) -> Result<T> {
        let raw = self.members.get(key).ok_or_else(|| Error::Protocol {
            service: Service::Neutron,
            message: format!("the answer of {} has no {key:?} member", self.path),
        })?;
        serde_json::from_str(raw.get()).map_err(|source| Error::Decode {
            service: Service::Neutron,
            path: self.path.to_owned(),
            source: std::sync::Arc::new(source),
        })
    }

    /// The query of the `rel=next` link in `<plural>_links`, if any.
    pub(crate) fn next_page(&self, plural: &str) -> Option<Vec<(String, String)>> {
        let raw = self.members.get(&format!("{plural}_links"))?;
        let links: Vec<Link> = serde_json::from_str(raw.get()).unwrap_or_default();
        links
            .iter()
            .find(|l| l.rel == "next")
            .and_then(|l| url::Url::parse(&l.href).ok())
            .map(|u| u.query_pairs().into_owned().collect())
    }
}

/// Deserialize the member `key` of a JSON answer.
pub(crate) fn take_key<T: DeserializeOwned>(body: &[u8], key: &str, path: &str) -> Result<T> {
    Answer::parse(body, path)?.take(key)
}

#[derive(Deserialize)]
struct Link {
    #[serde(default)]
    rel: String,
    #[serde(default)]
    href: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_link_query_is_extracted() {
        let body = json!({
            "ports": [],
            "ports_links": [
                {"rel": "previous", "href": "http://h:9696/v2.0/ports?limit=2&marker=a&page_reverse=True"},
                {"rel": "next", "href": "http://h:9696/v2.0/ports?limit=2&marker=b&tags=x%2Cy"}
            ]
        })
        .to_string();
        assert_eq!(
            Answer::parse(body.as_bytes(), "p")
                .unwrap()
                .next_page("ports")
                .unwrap(),
            vec![
                ("limit".to_string(), "2".to_string()),
                ("marker".to_string(), "b".to_string()),
                ("tags".to_string(), "x,y".to_string())
            ]
        );
        assert!(Answer::parse(br#"{"ports": []}"#, "p")
            .unwrap()
            .next_page("ports")
            .is_none());
    }

    #[test]
    fn ids_cannot_escape_the_path() {
        assert!(check_id("0b1c-22").is_ok());
        for bad in [
            "", "a/b", "../x", "a?b", "a b", "a%2F", ".", "..", "a\\b", "é",
        ] {
            assert!(check_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tags_are_percent_encoded_in_paths() {
        assert_eq!(
            encode_segment("kuryr.net.uuid.lh:ab"),
            "kuryr.net.uuid.lh%3Aab"
        );
        assert_eq!(encode_segment("a/b c"), "a%2Fb%20c");
    }
}

#[cfg(test)]
mod parse_tests {
    use super::*;

    #[test]
    fn numbers_beyond_u64_are_parsed_exactly() {
        // Two /64 subnets: 2^65 - 4 addresses.
        let body = br#"{"network_ip_availability": {"total_ips": 36893488147419103228}}"#;
        #[derive(Deserialize)]
        struct A {
            total_ips: u128,
        }
        let a: A = take_key(body, "network_ip_availability", "p").unwrap();
        assert_eq!(a.total_ips, 36893488147419103228);
    }

    #[test]
    fn a_missing_member_is_a_protocol_error() {
        let err = take_key::<Vec<String>>(br#"{"other": 1}"#, "ports", "v2.0/ports").unwrap_err();
        assert!(matches!(err, Error::Protocol { .. }), "{err:?}");
        let err = take_key::<Vec<String>>(b"not json", "ports", "v2.0/ports").unwrap_err();
        assert!(matches!(err, Error::Decode { .. }), "{err:?}");
    }
}
