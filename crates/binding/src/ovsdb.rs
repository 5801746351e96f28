//! A minimal OVSDB client (RFC 7047): JSON-RPC over ovsdb-server's unix socket, the way
//! `ovs-vsctl` talks to it, without forking `ovs-vsctl`.
//!
//! One connection is opened on first use and reused by every call; requests carry increasing
//! ids and their answers are matched by id, so concurrent calls share the connection (ovsdb-server
//! may answer them out of order: a transaction with a `wait` operation is held until its
//! condition holds). The server's `echo` requests (its inactivity probe) are answered. A
//! connection that the server closed is replaced by a new one on the next call.
//!
//! Only what kuryr needs is here: `transact` on the `Open_vSwitch` database and `echo`, plus
//! helpers for OVSDB's JSON encoding of sets, maps and uuids. No monitors, no IDL.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde_json::{json, Map, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// Where Debian's (and upstream's default) ovsdb-server listens.
pub const DEFAULT_SOCKET: &str = "/var/run/openvswitch/db.sock";

/// The database that ovs-vswitchd reads its configuration from.
pub const DATABASE: &str = "Open_vSwitch";

/// How long a request may wait for its answer, unless it says otherwise.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// An answer bigger than this is not something kuryr asked for: the connection is dropped
/// rather than letting the buffer grow without bound.
const MAX_MESSAGE: usize = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum OvsdbError {
    /// The socket could not be connected to.
    #[error("connecting to ovsdb-server at {}: {}{}", path.display(), source, connect_hint(source))]
    Connect {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// Reading or writing the connection failed.
    #[error("connection to ovsdb-server at {} failed: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// The connection closed before the answer came (ovsdb-server restarted or dropped us).
    #[error("ovsdb-server at {} closed the connection before answering {method}; retry", path.display())]
    Disconnected { path: PathBuf, method: String },

    /// No answer in time.
    #[error("ovsdb-server at {} did not answer {method} within {} s", path.display(), after.as_secs_f32())]
    Timeout {
        path: PathBuf,
        method: String,
        after: Duration,
    },

    /// Something that is not OVSDB's JSON-RPC came over the connection.
    #[error("unexpected message from ovsdb-server at {}: {reason}", path.display())]
    Protocol { path: PathBuf, reason: String },

    /// The server refused the request as a whole (unknown database, malformed request, ...).
    #[error("ovsdb-server refused {method}: {error}{}", details_suffix(details))]
    Rpc {
        method: String,
        error: String,
        details: Option<String>,
    },

    /// An operation of a transaction failed, and with it the whole transaction (nothing of it
    /// was committed).
    #[error(
        "OVSDB transaction failed at operation {index} ({op}): {error}{}",
        details_suffix(details)
    )]
    Transaction {
        /// Position of the failed operation; `ops.len()` for a failure at commit (a
        /// constraint or referential integrity violation).
        index: usize,
        /// `insert into Port`, `wait on Bridge`, `commit`, ...
        op: String,
        /// RFC 7047's error string, e.g. `constraint violation` or `timed out`.
        error: String,
        details: Option<String>,
    },

    /// [`Ovsdb`] was used outside a tokio runtime.
    #[error("the OVSDB connection needs a tokio runtime")]
    NoRuntime,
}

impl OvsdbError {
    /// The RFC 7047 error string of a failed transaction operation, e.g. `timed out` for a
    /// `wait` whose condition did not hold.
    pub fn op_error(&self) -> Option<&str> {
        match self {
            OvsdbError::Transaction { error, .. } => Some(error),
            _ => None,
        }
    }
}

fn connect_hint(err: &io::Error) -> &'static str {
    match err.kind() {
        io::ErrorKind::NotFound => {
            ": the socket does not exist; is Open vSwitch running? Start it \
             (`/usr/share/openvswitch/scripts/ovs-ctl start`) or set the socket's path"
        }
        io::ErrorKind::ConnectionRefused => ": nothing listens on it; is ovsdb-server running?",
        io::ErrorKind::PermissionDenied => ": kuryr needs to run as root to use it",
        _ => "",
    }
}

fn details_suffix(details: &Option<String>) -> String {
    match details {
        Some(d) if !d.is_empty() => format!(": {d}"),
        _ => String::new(),
    }
}

/// An OVSDB client for one ovsdb-server socket. Cheap to create: it connects on first use.
#[derive(Debug)]
pub struct Ovsdb {
    path: PathBuf,
    timeout: Duration,
    next_id: AtomicU64,
    /// The current connection; replaced when found closed. A tokio mutex, so concurrent first
    /// calls wait for one connect instead of each opening a socket.
    conn: tokio::sync::Mutex<Option<Arc<Connection>>>,
}

impl Ovsdb {
    /// A client for the ovsdb-server listening on unix socket `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Ovsdb {
            path: path.into(),
            timeout: DEFAULT_TIMEOUT,
            next_id: AtomicU64::new(1),
            conn: tokio::sync::Mutex::new(None),
        }
    }

    /// How long a request waits for its answer (10 s unless set). A transaction with `wait`
    /// operations waits this much longer than their timeouts.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `ops` as one transaction on the `Open_vSwitch` database and returns one result per
    /// operation (`{"rows": [...]}`, `{"count": n}`, `{"uuid": [...]}` or `{}`).
    ///
    /// # Errors
    ///
    /// [`OvsdbError::Transaction`] names the first operation that failed; the transaction is
    /// then not committed. Connection failures and timeouts as [`OvsdbError`]'s other
    /// variants.
    pub async fn transact(&self, ops: &[Value]) -> Result<Vec<Value>, OvsdbError> {
        let waits: u64 = ops
            .iter()
            .filter(|op| op["op"] == "wait")
            .filter_map(|op| op["timeout"].as_u64())
            .sum();
        let timeout = self.timeout + Duration::from_millis(waits);
        let mut params = Vec::with_capacity(ops.len() + 1);
        params.push(Value::from(DATABASE));
        params.extend(ops.iter().cloned());
        let answer = self.request("transact", params, timeout).await?;
        check_results(ops, answer, &self.path)
    }

    /// Sends `echo` and checks that the same arguments come back: whether the server answers.
    pub async fn echo(&self) -> Result<(), OvsdbError> {
        let params = vec![Value::from("kuryr")];
        let answer = self.request("echo", params.clone(), self.timeout).await?;
        if answer == Value::Array(params) {
            Ok(())
        } else {
            Err(OvsdbError::Protocol {
                path: self.path.clone(),
                reason: format!("echo came back as {answer}"),
            })
        }
    }

    /// Sends one request and waits for its answer's `result`. A request that only reads
    /// (`echo`, or a transaction of `select`, `wait` and `comment` operations) and is lost with
    /// a connection that closes under it is sent once more on a new connection: resending it
    /// cannot change anything twice.
    async fn request(
        &self,
        method: &str,
        params: Vec<Value>,
        timeout: Duration,
    ) -> Result<Value, OvsdbError> {
        let resendable = method == "echo"
            || (method == "transact"
                && params
                    .iter()
                    .skip(1)
                    .all(|op| matches!(op["op"].as_str(), Some("select" | "wait" | "comment"))));
        match self.request_once(method, &params, timeout).await {
            Err(OvsdbError::Disconnected { .. }) if resendable => {
                tracing::debug!(method, "connection to ovsdb-server lost, resending");
                self.request_once(method, &params, timeout).await
            }
            other => other,
        }
    }

    async fn request_once(
        &self,
        method: &str,
        params: &[Value],
        timeout: Duration,
    ) -> Result<Value, OvsdbError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let message = json!({"id": id, "method": method, "params": params});
        let bytes = serde_json::to_vec(&message).map_err(|e| OvsdbError::Protocol {
            path: self.path.clone(),
            reason: format!("cannot encode request: {e}"),
        })?;
        // A connection found closed here was dropped by the server since the last call (e.g.
        // it restarted): nothing was sent on it, so one new connection is tried.
        let mut retried = false;
        let (conn, receiver) = loop {
            let conn = self.connection().await?;
            match conn.send(id, bytes.clone()) {
                Some(receiver) => break (conn, receiver),
                None if !retried => {
                    self.forget(&conn).await;
                    retried = true;
                }
                None => {
                    return Err(OvsdbError::Disconnected {
                        path: self.path.clone(),
                        method: method.to_owned(),
                    })
                }
            }
        };
        let answer = match tokio::time::timeout(timeout, receiver).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => {
                self.forget(&conn).await;
                return Err(OvsdbError::Disconnected {
                    path: self.path.clone(),
                    method: method.to_owned(),
                });
            }
            Err(_) => {
                conn.abandon(id);
                return Err(OvsdbError::Timeout {
                    path: self.path.clone(),
                    method: method.to_owned(),
                    after: timeout,
                });
            }
        };
        decode_answer(method, answer, &self.path)
    }

    /// The open connection, connecting if there is none or it has closed.
    async fn connection(&self) -> Result<Arc<Connection>, OvsdbError> {
        let mut slot = self.conn.lock().await;
        if let Some(conn) = slot.as_ref() {
            if !conn.is_closed() {
                return Ok(conn.clone());
            }
        }
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| OvsdbError::NoRuntime)?;
        let stream =
            UnixStream::connect(&self.path)
                .await
                .map_err(|source| OvsdbError::Connect {
                    path: self.path.clone(),
                    source,
                })?;
        tracing::debug!(path = %self.path.display(), "connected to ovsdb-server");
        let conn = Arc::new(Connection::start(&runtime, stream, self.path.clone()));
        *slot = Some(conn.clone());
        Ok(conn)
    }

    /// Drops `conn` if it is still the current connection.
    async fn forget(&self, conn: &Arc<Connection>) {
        let mut slot = self.conn.lock().await;
        if slot.as_ref().is_some_and(|c| Arc::ptr_eq(c, conn)) {
            *slot = None;
        }
    }
}

/// Answers waiting for their request's id; `None` once the connection has closed.
type Pending = Mutex<Option<HashMap<u64, oneshot::Sender<Value>>>>;

/// One connection: a reader task that dispatches answers and answers echoes, and a writer
/// task that owns the write half (so a slow write never blocks reading, and vice versa).
#[derive(Debug)]
struct Connection {
    pending: Arc<Pending>,
    writer: mpsc::UnboundedSender<Vec<u8>>,
    tasks: [JoinHandle<()>; 2],
}

impl Drop for Connection {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Connection {
    fn start(runtime: &tokio::runtime::Handle, stream: UnixStream, path: PathBuf) -> Self {
        let (read, write) = stream.into_split();
        let pending: Arc<Pending> = Arc::new(Mutex::new(Some(HashMap::new())));
        let (writer, outgoing) = mpsc::unbounded_channel();
        let reader = runtime.spawn(read_loop(
            read,
            pending.clone(),
            writer.clone(),
            path.clone(),
        ));
        let writer_task = runtime.spawn(write_loop(write, outgoing, pending.clone(), path));
        Connection {
            pending,
            writer,
            tasks: [reader, writer_task],
        }
    }

    fn is_closed(&self) -> bool {
        lock(&self.pending).is_none()
    }

    /// Registers `id` and queues `bytes`; `None` if the connection has closed.
    fn send(&self, id: u64, bytes: Vec<u8>) -> Option<oneshot::Receiver<Value>> {
        let (tx, rx) = oneshot::channel();
        lock(&self.pending).as_mut()?.insert(id, tx);
        if self.writer.send(bytes).is_err() {
            self.abandon(id);
            return None;
        }
        Some(rx)
    }

    /// Forgets a request whose caller gave up waiting.
    fn abandon(&self, id: u64) {
        if let Some(map) = lock(&self.pending).as_mut() {
            map.remove(&id);
        }
    }
}

fn lock(
    pending: &Pending,
) -> std::sync::MutexGuard<'_, Option<HashMap<u64, oneshot::Sender<Value>>>> {
    pending.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Marks the connection closed: every waiting caller gets `Disconnected` (its sender dropped).
fn close(pending: &Pending) {
    lock(pending).take();
}

async fn write_loop(
    mut write: OwnedWriteHalf,
    mut outgoing: mpsc::UnboundedReceiver<Vec<u8>>,
    pending: Arc<Pending>,
    path: PathBuf,
) {
    while let Some(bytes) = outgoing.recv().await {
        if let Err(e) = write.write_all(&bytes).await {
            tracing::warn!(path = %path.display(), error = %e, "writing to ovsdb-server failed");
            close(&pending);
            return;
        }
    }
}

async fn read_loop(
    mut read: OwnedReadHalf,
    pending: Arc<Pending>,
    writer: mpsc::UnboundedSender<Vec<u8>>,
    path: PathBuf,
) {
    let mut buffer = Vec::new();
    let mut chunk = vec![0; 64 * 1024];
    loop {
        let n = match read.read(&mut chunk).await {
            Ok(0) => {
                tracing::debug!(path = %path.display(), "ovsdb-server closed the connection");
                break;
            }
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "reading from ovsdb-server failed");
                break;
            }
        };
        buffer.extend_from_slice(&chunk[..n]);
        match split_messages(&mut buffer) {
            Ok(messages) => {
                for message in messages {
                    dispatch(message, &pending, &writer);
                }
            }
            Err(reason) => {
                tracing::warn!(path = %path.display(), %reason, "dropping the OVSDB connection");
                break;
            }
        }
        if buffer.len() > MAX_MESSAGE {
            tracing::warn!(path = %path.display(), "OVSDB message too large, dropping the connection");
            break;
        }
    }
    close(&pending);
}

/// Takes the complete JSON values off the front of `buffer` (OVSDB's JSON-RPC has no framing:
/// messages simply follow each other), leaving an incomplete last one for the next read.
fn split_messages(buffer: &mut Vec<u8>) -> Result<Vec<Value>, String> {
    let mut stream = serde_json::Deserializer::from_slice(buffer).into_iter::<Value>();
    let mut messages = Vec::new();
    let consumed = loop {
        let offset = stream.byte_offset();
        match stream.next() {
            Some(Ok(value)) => messages.push(value),
            Some(Err(e)) if e.is_eof() => break offset,
            Some(Err(e)) => return Err(format!("invalid JSON: {e}")),
            None => break stream.byte_offset(),
        }
    };
    buffer.drain(..consumed);
    Ok(messages)
}

/// Routes one message: an answer to its waiting caller, an `echo` request back to the server;
/// notifications (`update`, `locked`, ...) are not for us and are dropped.
fn dispatch(message: Value, pending: &Pending, writer: &mpsc::UnboundedSender<Vec<u8>>) {
    match message.get("method").and_then(Value::as_str) {
        Some("echo") => {
            let reply = json!({"id": message["id"], "result": message["params"], "error": null});
            if let Ok(bytes) = serde_json::to_vec(&reply) {
                let _ = writer.send(bytes);
            }
        }
        Some(method) => tracing::trace!(method, "ignoring OVSDB request or notification"),
        None => {
            let Some(id) = message.get("id").and_then(Value::as_u64) else {
                tracing::debug!(%message, "OVSDB answer without a usable id");
                return;
            };
            let waiter = lock(pending).as_mut().and_then(|map| map.remove(&id));
            match waiter {
                Some(waiter) => {
                    let _ = waiter.send(message);
                }
                None => tracing::debug!(id, "OVSDB answer nobody waits for (timed out?)"),
            }
        }
    }
}

/// The `result` of an answer, or its `error` as an [`OvsdbError::Rpc`].
fn decode_answer(method: &str, answer: Value, path: &Path) -> Result<Value, OvsdbError> {
    let Value::Object(mut answer) = answer else {
        return Err(OvsdbError::Protocol {
            path: path.to_owned(),
            reason: format!("answer to {method} is not an object"),
        });
    };
    match answer.remove("error") {
        None | Some(Value::Null) => {}
        Some(error) => {
            let (error, details) = error_parts(&error);
            return Err(OvsdbError::Rpc {
                method: method.to_owned(),
                error,
                details,
            });
        }
    }
    answer.remove("result").ok_or_else(|| OvsdbError::Protocol {
        path: path.to_owned(),
        reason: format!("answer to {method} has neither result nor error"),
    })
}

/// RFC 7047 errors are `{"error": "...", "details": "..."}`; older servers may send a string.
fn error_parts(error: &Value) -> (String, Option<String>) {
    match error {
        Value::String(s) => (s.clone(), None),
        Value::Object(o) => (
            o.get("error")
                .and_then(Value::as_str)
                .map_or_else(|| error.to_string(), str::to_owned),
            o.get("details").and_then(Value::as_str).map(str::to_owned),
        ),
        other => (other.to_string(), None),
    }
}

/// Checks a transaction's results: one per operation, plus a last one if the commit failed.
fn check_results(ops: &[Value], answer: Value, path: &Path) -> Result<Vec<Value>, OvsdbError> {
    let Value::Array(results) = answer else {
        return Err(OvsdbError::Protocol {
            path: path.to_owned(),
            reason: "transact result is not an array".into(),
        });
    };
    for (index, result) in results.iter().enumerate() {
        if let Some(error) = result.get("error") {
            let (error, mut details) = error_parts(error);
            if details.is_none() {
                details = result
                    .get("details")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
            }
            return Err(OvsdbError::Transaction {
                index,
                op: ops
                    .get(index)
                    .map_or_else(|| "commit".to_owned(), describe_op),
                error,
                details,
            });
        }
    }
    if results.len() < ops.len() {
        return Err(OvsdbError::Protocol {
            path: path.to_owned(),
            reason: format!(
                "{} results for a transaction of {} operations",
                results.len(),
                ops.len()
            ),
        });
    }
    Ok(results)
}

/// `insert into Port`, `mutate on Bridge`: which operation failed, for the error message.
fn describe_op(op: &Value) -> String {
    let name = op["op"].as_str().unwrap_or("?");
    match op["table"].as_str() {
        Some(table) if name == "insert" => format!("insert into {table}"),
        Some(table) => format!("{name} on {table}"),
        None => name.to_owned(),
    }
}

// OVSDB's JSON encoding of values (RFC 7047 section 5.1).

/// A reference to an existing row: `["uuid", "..."]`.
pub fn uuid(id: &str) -> Value {
    json!(["uuid", id])
}

/// A reference to a row inserted earlier in the same transaction: `["named-uuid", "..."]`.
pub fn named_uuid(name: &str) -> Value {
    json!(["named-uuid", name])
}

/// A set: `["set", [...]]`.
pub fn set(items: impl IntoIterator<Item = Value>) -> Value {
    json!(["set", items.into_iter().collect::<Vec<_>>()])
}

/// A string-to-string map: `["map", [["k", "v"], ...]]`.
pub fn map<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Value {
    let pairs: Vec<Value> = pairs.into_iter().map(|(k, v)| json!([k, v])).collect();
    json!(["map", pairs])
}

/// The uuid string of a `["uuid", "..."]` value.
pub fn as_uuid(value: &Value) -> Option<&str> {
    match value.as_array().map(Vec::as_slice) {
        Some([tag, id]) if tag == "uuid" => id.as_str(),
        _ => None,
    }
}

/// The members of a set column: a single atom stands for a set of one.
pub fn set_members(value: &Value) -> Vec<&Value> {
    match value.as_array().map(Vec::as_slice) {
        Some([tag, Value::Array(items)]) if tag == "set" => items.iter().collect(),
        _ => vec![value],
    }
}

/// A string-to-string map column as pairs; anything else reads as empty.
pub fn map_pairs(value: &Value) -> Vec<(&str, &str)> {
    match value.as_array().map(Vec::as_slice) {
        Some([tag, Value::Array(pairs)]) if tag == "map" => pairs
            .iter()
            .filter_map(|pair| match pair.as_array().map(Vec::as_slice) {
                Some([k, v]) => Some((k.as_str()?, v.as_str()?)),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// The `rows` of a `select` result.
pub fn rows(result: &Value) -> &[Value] {
    result["rows"].as_array().map_or(&[], Vec::as_slice)
}

/// An object from `(column, value)` pairs, for `row` and `rows` arguments.
pub fn row<'a>(columns: impl IntoIterator<Item = (&'a str, Value)>) -> Value {
    Value::Object(
        columns
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect::<Map<_, _>>(),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn splits_back_to_back_messages_and_keeps_a_partial_one() {
        let mut buffer = br#"{"id":1,"result":[]}{"id":2,"result":{"a":"#.to_vec();
        let messages = split_messages(&mut buffer).unwrap();
        assert_eq!(messages, vec![json!({"id": 1, "result": []})]);
        assert_eq!(buffer, br#"{"id":2,"result":{"a":"#);
        buffer.extend_from_slice(br#"1}} "#);
        let messages = split_messages(&mut buffer).unwrap();
        assert_eq!(messages, vec![json!({"id": 2, "result": {"a": 1}})]);
        assert!(buffer.iter().all(u8::is_ascii_whitespace));
        let mut garbage = b"}{".to_vec();
        assert!(split_messages(&mut garbage).is_err());
    }

    #[test]
    fn transaction_errors_name_the_operation() {
        let path = Path::new("/x");
        let ops = [
            json!({"op": "insert", "table": "Port", "row": {}}),
            json!({"op": "wait", "table": "Bridge"}),
        ];
        let err = check_results(
            &ops,
            json!([{}, {"error": "timed out", "details": "\"wait\" timed out"}]),
            path,
        )
        .unwrap_err();
        assert_eq!(err.op_error(), Some("timed out"));
        assert_eq!(
            err.to_string(),
            "OVSDB transaction failed at operation 1 (wait on Bridge): timed out: \"wait\" timed out"
        );
        let err = check_results(
            &ops,
            json!([{"uuid": ["uuid", "u"]}, {}, {"error": "constraint violation"}]),
            path,
        )
        .unwrap_err();
        assert!(err
            .to_string()
            .contains("operation 2 (commit): constraint violation"));
        let ok = check_results(&ops, json!([{"uuid": ["uuid", "u"]}, {}]), path).unwrap();
        assert_eq!(ok.len(), 2);
        let err = decode_answer(
            "transact",
            json!({"id": 1, "result": null, "error": {"error": "unknown database", "details": "x"}}),
            path,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "ovsdb-server refused transact: unknown database: x"
        );
    }

    #[test]
    fn value_helpers() {
        assert_eq!(as_uuid(&uuid("abc")), Some("abc"));
        assert_eq!(as_uuid(&json!(["set", []])), None);
        let one = uuid("a");
        assert_eq!(set_members(&one), vec![&one]);
        assert_eq!(set_members(&json!(["set", []])).len(), 0);
        let m = map([("k", "v"), ("x", "y")]);
        assert_eq!(map_pairs(&m), vec![("k", "v"), ("x", "y")]);
        assert_eq!(map_pairs(&json!(["map", [["k", 1]]])), vec![]);
    }

    async fn read_message(stream: &mut UnixStream, buffer: &mut Vec<u8>) -> Value {
        let mut chunk = [0; 4096];
        loop {
            if let Some(m) = split_messages(buffer).unwrap().into_iter().next() {
                return m;
            }
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "client closed the connection");
            buffer.extend_from_slice(&chunk[..n]);
        }
    }

    /// The server's inactivity probe, answered while a request of ours is outstanding, and
    /// answers matched by id. A real ovsdb-server does not probe clients of its unix socket,
    /// so a listener in the test plays the server.
    #[tokio::test]
    async fn answers_echo_and_matches_answers_by_id() {
        let dir = std::env::temp_dir().join(format!("kuryr-ovsdb-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("db.sock");
        let _ = std::fs::remove_file(&path);
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        let server = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut buffer = Vec::new();
            let request = read_message(&mut stream, &mut buffer).await;
            stream
                .write_all(br#"{"id":"echo","method":"echo","params":[]}"#)
                .await
                .unwrap();
            let echo_reply = read_message(&mut stream, &mut buffer).await;
            // An answer to an id nobody asked for is ignored, the real one is delivered.
            let answer = json!({"id": request["id"], "result": [{"count": 7}], "error": null});
            stream
                .write_all(format!(r#"{{"id":999,"result":[]}}{answer}"#).as_bytes())
                .await
                .unwrap();
            echo_reply
        });
        let client = Ovsdb::new(&path);
        let results = client
            .transact(&[json!({"op": "comment", "comment": "x"})])
            .await
            .unwrap();
        assert_eq!(results, vec![json!({"count": 7})]);
        let echo_reply = server.await.unwrap();
        assert_eq!(
            echo_reply,
            json!({"id": "echo", "result": [], "error": null})
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
