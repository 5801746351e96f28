//! Turning a link's TX checksum offload off, as `ethtool -K DEV tx off` does, through the
//! kernel's ethtool generic netlink family (no `ethtool` binary, no ioctl).
//!
//! Why: a veth hands TCP and UDP packets on with a partial checksum and a mark that says
//! "complete me". Open vSwitch's userspace (`netdev`) datapath reads them from the host end
//! through a packet socket, which drops the mark, and forwards them as they are: the receiving
//! container sees bad checksums and drops them (ICMP, checksummed in software, still works).
//! With TX checksum offload off on the container's end, its stack writes full checksums.
//!
//! The exchange: resolve the `ethtool` family id, `ETHTOOL_MSG_FEATURES_GET` to see which
//! `tx-checksum-*` features are active, `ETHTOOL_MSG_FEATURES_SET` with a WANTED bitset that
//! names just those bits without a value (off) and without `ETHTOOL_A_BITSET_NOMASK` (so the
//! listed bits are the mask and no other feature changes), then `FEATURES_GET` again to
//! confirm. The kernel itself drops what depends on the checksum (TSO and other
//! segmentation offloads), as it does for `ethtool`.

use futures::StreamExt;
use netlink_packet_core::{
    parse_string, parse_u16, DecodeError, Emitable, NetlinkMessage, NetlinkPayload, Nla,
    NlasIterator, ParseableParametrized, NLA_HEADER_SIZE, NLM_F_ACK, NLM_F_REQUEST,
};
use netlink_packet_generic::constants::{
    CTRL_ATTR_FAMILY_ID, CTRL_ATTR_FAMILY_NAME, CTRL_CMD_GETFAMILY, GENL_ID_CTRL,
};
use netlink_packet_generic::{GenlFamily, GenlHeader, GenlMessage};
use netlink_proto::sys::{protocols::NETLINK_GENERIC, SocketAddr};
use netlink_proto::ConnectionHandle;

use crate::error::ENODEV;
use crate::{validate_ifname, Error, Op};

/// Feature names that `ethtool -K DEV tx off` turns off (its `tx-checksum-*` pattern).
const TX_CHECKSUM_PREFIX: &str = "tx-checksum-";

// From <linux/ethtool_netlink.h>.
const ETHTOOL_GENL_NAME: &str = "ethtool";
const ETHTOOL_GENL_VERSION: u8 = 1;
const ETHTOOL_MSG_FEATURES_GET: u8 = 11;
const ETHTOOL_MSG_FEATURES_SET: u8 = 12;
const ETHTOOL_A_HEADER_DEV_NAME: u16 = 2;
const ETHTOOL_A_FEATURES_HEADER: u16 = 1;
const ETHTOOL_A_FEATURES_WANTED: u16 = 3;
const ETHTOOL_A_FEATURES_ACTIVE: u16 = 4;
const ETHTOOL_A_BITSET_NOMASK: u16 = 1;
const ETHTOOL_A_BITSET_BITS: u16 = 3;
const ETHTOOL_A_BITSET_BITS_BIT: u16 = 1;
const ETHTOOL_A_BITSET_BIT_NAME: u16 = 2;
const ETHTOOL_A_BITSET_BIT_VALUE: u16 = 3;
/// The generic netlink controller's version (`nlctrl` answers any).
const CTRL_VERSION: u8 = 2;
const ENOENT: i32 = 2;

/// Turns TX checksum offload off on link `name` (in this network namespace) and checks that
/// the kernel did. Returns the features turned off, empty if none was on: a second call
/// sends no change.
///
/// # Errors
///
/// [`Error::MissingLink`] if there is no such link; [`Error::Kernel`] if the kernel refuses
/// (`EPERM` without CAP_NET_ADMIN); [`Error::Offload`] if the kernel has no ethtool netlink
/// interface, keeps a feature on, or the exchange fails; [`Error::NoRuntime`] outside tokio.
pub async fn disable_tx_checksum(name: &str) -> Result<Vec<String>, Error> {
    validate_ifname(name)?;
    // The socket registers with the tokio reactor, which panics without a runtime.
    tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
    let (connection, handle, _) =
        netlink_proto::new_connection::<GenlMessage<Genl>>(NETLINK_GENERIC).map_err(|e| {
            offload_error(
                name,
                format!("opening a generic netlink socket failed: {e}"),
            )
        })?;
    // A socket per call, driven here rather than by a spawned task: a plug does this once, and
    // nothing is left running when it returns.
    tokio::select! {
        biased;
        result = exchange(&handle, name) => result,
        () = connection => Err(closed(name)),
    }
}

async fn exchange(handle: &Handle, name: &str) -> Result<Vec<String>, Error> {
    let family = ethtool_family(handle, name).await?;
    let on = tx_checksum_active(handle, family, name).await?;
    if on.is_empty() {
        tracing::debug!(link = name, "TX checksum offload is already off");
        return Ok(on);
    }
    // Each bit listed without ETHTOOL_A_BITSET_BIT_VALUE: wanted off.
    let bits = on
        .iter()
        .map(|feature| {
            Attr::Nest(
                ETHTOOL_A_BITSET_BITS_BIT,
                vec![Attr::Str(ETHTOOL_A_BITSET_BIT_NAME, feature.clone())],
            )
        })
        .collect();
    let set = [
        dev_header(name),
        Attr::Nest(
            ETHTOOL_A_FEATURES_WANTED,
            vec![Attr::Nest(ETHTOOL_A_BITSET_BITS, bits)],
        ),
    ];
    // The reply carries only differences; the GET below is the plain answer.
    request(handle, family, ETHTOOL_MSG_FEATURES_SET, &set, name).await?;
    let still_on = tx_checksum_active(handle, family, name).await?;
    if !still_on.is_empty() {
        return Err(offload_error(
            name,
            format!(
                "the kernel keeps {} on (fixed for this link, see `ethtool -k {name}`), so TCP \
                 and UDP from it would fail through Open vSwitch's userspace (netdev) datapath",
                still_on.join(", ")
            ),
        ));
    }
    tracing::info!(link = name, features = ?on, "turned TX checksum offload off");
    Ok(on)
}

/// The id the kernel gave the `ethtool` family (it is assigned at boot, not fixed).
async fn ethtool_family(handle: &Handle, name: &str) -> Result<u16, Error> {
    let ask = [Attr::Str(CTRL_ATTR_FAMILY_NAME, ETHTOOL_GENL_NAME.into())];
    let replies = match request(handle, GENL_ID_CTRL, CTRL_CMD_GETFAMILY, &ask, name).await {
        Err(Error::Kernel { errno: ENOENT, .. }) => {
            return Err(offload_error(
                name,
                "this kernel has no ethtool netlink interface (it needs Linux 5.6 or later \
                 built with CONFIG_ETHTOOL_NETLINK); TCP and UDP through Open vSwitch's \
                 userspace (netdev) datapath need it"
                    .into(),
            ));
        }
        other => other?,
    };
    let id = replies
        .iter()
        .flat_map(|body| attrs(body))
        .find_map(|attr| match attr {
            Ok((CTRL_ATTR_FAMILY_ID, value)) => Some(parse_u16(value)),
            Ok(_) => None,
            Err(e) => Some(Err(e)),
        });
    match id {
        Some(Ok(id)) => Ok(id),
        Some(Err(e)) => Err(unreadable(name, &e)),
        None => Err(offload_error(
            name,
            "the kernel's answer for the ethtool family has no id".into(),
        )),
    }
}

/// The `tx-checksum-*` features active on `name`.
async fn tx_checksum_active(
    handle: &Handle,
    family: u16,
    name: &str,
) -> Result<Vec<String>, Error> {
    let replies = request(
        handle,
        family,
        ETHTOOL_MSG_FEATURES_GET,
        &[dev_header(name)],
        name,
    )
    .await?;
    let Some(reply) = replies.first() else {
        return Err(offload_error(name, "the kernel sent no features".into()));
    };
    let active = active_features(reply).map_err(|e| unreadable(name, &e))?;
    Ok(active
        .into_iter()
        .filter(|feature| feature.starts_with(TX_CHECKSUM_PREFIX))
        .collect())
}

/// The names in the ACTIVE bitset of a FEATURES_GET reply. Bitsets come in the verbose form
/// (we never ask for compact ones): NOMASK with the set bits listed, or each bit listed with
/// its VALUE flag if set.
fn active_features(reply: &[u8]) -> Result<Vec<String>, DecodeError> {
    let mut bitset = None;
    for attr in attrs(reply) {
        if let (ETHTOOL_A_FEATURES_ACTIVE, value) = attr? {
            bitset = Some(value);
        }
    }
    let bitset = bitset.ok_or_else(|| DecodeError::from("no ACTIVE bitset"))?;
    let (mut nomask, mut bits) = (false, None);
    for attr in attrs(bitset) {
        match attr? {
            (ETHTOOL_A_BITSET_NOMASK, _) => nomask = true,
            (ETHTOOL_A_BITSET_BITS, value) => bits = Some(value),
            _ => {}
        }
    }
    // A compact bitset (VALUE/MASK, no BITS) has no names.
    let bits = bits.ok_or_else(|| DecodeError::from("ACTIVE bitset lists no bits"))?;
    let mut on = Vec::new();
    for bit in attrs(bits) {
        let (ETHTOOL_A_BITSET_BITS_BIT, bit) = bit? else {
            continue;
        };
        let (mut name, mut value) = (None, false);
        for attr in attrs(bit) {
            match attr? {
                (ETHTOOL_A_BITSET_BIT_NAME, v) => name = Some(parse_string(v)?),
                (ETHTOOL_A_BITSET_BIT_VALUE, _) => value = true,
                _ => {}
            }
        }
        if let Some(name) = name.filter(|_| nomask || value) {
            on.push(name);
        }
    }
    Ok(on)
}

/// `ETHTOOL_A_*_HEADER` naming the link.
fn dev_header(name: &str) -> Attr {
    Attr::Nest(
        ETHTOOL_A_FEATURES_HEADER,
        vec![Attr::Str(ETHTOOL_A_HEADER_DEV_NAME, name.to_owned())],
    )
}

type Handle = ConnectionHandle<GenlMessage<Genl>>;

/// Sends one request (with `NLM_F_ACK`, so the answer always ends) and returns the attribute
/// bytes of each reply. A kernel refusal becomes [`Error::Kernel`], or for `ENODEV`
/// [`Error::MissingLink`].
async fn request(
    handle: &Handle,
    family: u16,
    cmd: u8,
    attrs: &[Attr],
    name: &str,
) -> Result<Vec<Vec<u8>>, Error> {
    let version = if family == GENL_ID_CTRL {
        CTRL_VERSION
    } else {
        ETHTOOL_GENL_VERSION
    };
    let body = Genl {
        cmd,
        version,
        attrs: layout(attrs),
    };
    let mut message =
        NetlinkMessage::from(GenlMessage::new(GenlHeader { cmd, version }, body, family));
    message.header.flags = NLM_F_REQUEST | NLM_F_ACK;
    message.finalize();
    let mut answers = handle
        .request(message, SocketAddr::new(0, 0))
        .map_err(|_| closed(name))?;
    let mut replies = Vec::new();
    while let Some(answer) = answers.next().await {
        match answer.payload {
            NetlinkPayload::InnerMessage(reply) => replies.push(reply.payload.attrs),
            NetlinkPayload::Error(e) => {
                if let Some(code) = e.code {
                    return Err(refused(name, code.get().abs()));
                }
            }
            _ => {}
        }
    }
    Ok(replies)
}

fn refused(name: &str, errno: i32) -> Error {
    if errno == ENODEV {
        return Error::MissingLink {
            name: name.to_owned(),
            reason: "its TX checksum offload is turned off for Open vSwitch's userspace \
                     (netdev) datapath, so the container's veth must exist, this end still in \
                     the host namespace, when the port is plugged; recreate the endpoint",
        };
    }
    Error::Kernel {
        op: Op::DisableTxChecksum,
        target: name.to_owned(),
        errno,
    }
}

fn offload_error(name: &str, reason: String) -> Error {
    Error::Offload {
        name: name.to_owned(),
        reason,
    }
}

fn closed(name: &str) -> Error {
    offload_error(
        name,
        "the generic netlink connection closed before the kernel answered; retry".into(),
    )
}

fn unreadable(name: &str, e: &DecodeError) -> Error {
    offload_error(
        name,
        format!("the kernel's ethtool answer could not be read ({e})"),
    )
}

/// The (type, value) pairs of the netlink attributes in `buf`, flags stripped.
fn attrs(buf: &[u8]) -> impl Iterator<Item = Result<(u16, &[u8]), DecodeError>> {
    NlasIterator::new(buf).map(|nla| {
        let nla = nla?;
        let (kind, end) = (nla.kind(), usize::from(nla.length()));
        // `NlasIterator` checked that the length fits the buffer.
        let value = nla
            .into_inner()
            .get(NLA_HEADER_SIZE..end)
            .unwrap_or_default();
        Ok((kind, value))
    })
}

/// A generic netlink message body of any family: the command and its attributes, already
/// laid out. One type for both families we talk to, so that one socket serves both.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Genl {
    cmd: u8,
    version: u8,
    attrs: Vec<u8>,
}

impl GenlFamily for Genl {
    /// Only used by resolvers, which we do without; the id is passed to [`GenlMessage::new`].
    fn family_name() -> &'static str {
        ETHTOOL_GENL_NAME
    }

    fn command(&self) -> u8 {
        self.cmd
    }

    fn version(&self) -> u8 {
        self.version
    }
}

impl Emitable for Genl {
    fn buffer_len(&self) -> usize {
        self.attrs.len()
    }

    fn emit(&self, buffer: &mut [u8]) {
        buffer.copy_from_slice(&self.attrs);
    }
}

impl ParseableParametrized<[u8], GenlHeader> for Genl {
    fn parse_with_param(buf: &[u8], header: GenlHeader) -> Result<Self, DecodeError> {
        Ok(Genl {
            cmd: header.cmd,
            version: header.version,
            attrs: buf.to_vec(),
        })
    }
}

/// The attributes we send: NUL-terminated strings and nests.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Attr {
    Str(u16, String),
    Nest(u16, Vec<Attr>),
}

impl Nla for Attr {
    fn value_len(&self) -> usize {
        match self {
            Attr::Str(_, s) => s.len() + 1,
            Attr::Nest(_, inner) => inner.as_slice().buffer_len(),
        }
    }

    fn kind(&self) -> u16 {
        match self {
            Attr::Str(kind, _) | Attr::Nest(kind, _) => *kind,
        }
    }

    /// The ethtool family validates strictly: a nest without NLA_F_NESTED is refused.
    fn is_nested(&self) -> bool {
        matches!(self, Attr::Nest(..))
    }

    fn emit_value(&self, buffer: &mut [u8]) {
        match self {
            Attr::Str(_, s) => {
                let (text, nul) = buffer.split_at_mut(s.len());
                text.copy_from_slice(s.as_bytes());
                nul.fill(0);
            }
            Attr::Nest(_, inner) => inner.as_slice().emit(buffer),
        }
    }
}

fn layout(attrs: &[Attr]) -> Vec<u8> {
    let mut buf = vec![0; attrs.buffer_len()];
    attrs.emit(&mut buf);
    buf
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A verbose bitset as the kernel writes it.
    fn bitset(nomask: bool, bits: &[(&str, bool)]) -> Vec<Attr> {
        let bits = bits
            .iter()
            .map(|(name, value)| {
                let mut bit = vec![Attr::Str(ETHTOOL_A_BITSET_BIT_NAME, (*name).into())];
                if *value {
                    // A flag: an attribute with no value.
                    bit.push(Attr::Nest(ETHTOOL_A_BITSET_BIT_VALUE, vec![]));
                }
                Attr::Nest(ETHTOOL_A_BITSET_BITS_BIT, bit)
            })
            .collect();
        let mut set = Vec::new();
        if nomask {
            set.push(Attr::Nest(ETHTOOL_A_BITSET_NOMASK, vec![]));
        }
        set.push(Attr::Nest(ETHTOOL_A_BITSET_BITS, bits));
        set
    }

    #[test]
    fn reads_active_features_in_both_verbose_forms() {
        let listed = layout(&[
            dev_header("t_cx"),
            Attr::Nest(
                ETHTOOL_A_FEATURES_ACTIVE,
                bitset(
                    true,
                    &[("tx-checksum-ip-generic", false), ("rx-gro", false)],
                ),
            ),
        ]);
        assert_eq!(
            active_features(&listed).unwrap(),
            ["tx-checksum-ip-generic", "rx-gro"]
        );
        let masked = layout(&[Attr::Nest(
            ETHTOOL_A_FEATURES_ACTIVE,
            bitset(
                false,
                &[("tx-checksum-sctp", true), ("tx-checksum-ipv4", false)],
            ),
        )]);
        assert_eq!(active_features(&masked).unwrap(), ["tx-checksum-sctp"]);
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        assert!(active_features(&[]).is_err());
        let compact = layout(&[Attr::Nest(ETHTOOL_A_FEATURES_ACTIVE, vec![])]);
        assert!(active_features(&compact).is_err());
        // Truncated and garbage input is an error, never a panic.
        let good = layout(&[Attr::Nest(
            ETHTOOL_A_FEATURES_ACTIVE,
            bitset(true, &[("tx-checksum-ip-generic", false)]),
        )]);
        for cut in 0..good.len() {
            let _ = active_features(&good[..cut]);
        }
        let _ = active_features(&[0xff; 64]);
        let _ = active_features(&[4, 0, 4, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn nests_carry_the_nested_flag_and_strings_a_nul() {
        let bytes = layout(&[dev_header("ab")]);
        // len 12 = 4 + (4 + "ab\0" padded to 4); type 1 | NLA_F_NESTED.
        assert_eq!(
            bytes,
            [12, 0, 0x01, 0x80, 7, 0, 2, 0, b'a', b'b', 0, 0],
            "{bytes:?}"
        );
    }

    #[test]
    fn future_is_send() {
        fn send<T: Send>(_: &T) {}
        send(&disable_tx_checksum("x"));
    }
}
