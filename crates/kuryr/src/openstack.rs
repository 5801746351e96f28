//! The Neutron client that kuryr uses, built from its configuration.

use kuryr_openstack::neutron::Neutron;
use kuryr_openstack::Session;

use crate::config::OpenStackSettings;

/// Build the Neutron client for these settings; nothing is sent yet.
///
/// # Errors
/// A TLS file that cannot be read, or settings that cannot work together.
pub fn neutron_client(settings: &OpenStackSettings) -> kuryr_openstack::Result<Neutron> {
    let session = Session::new(settings.auth.clone(), settings.http.clone())?;
    Ok(Neutron::new(session, settings.endpoint.clone()))
}
