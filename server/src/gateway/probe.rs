//! The admin console's "Test" button: one non-streamed chat request with a one-token limit
//! through one channel, with the gateway's upstream client and deadlines. The channel's base
//! URL passes the SSRF guard again first (resolved now, since DNS may have changed since the
//! channel was saved). The outcome is a short, user-safe line: never the key or the
//! upstream's raw error text.

use std::time::Instant;

use weir_app::server_fns::admin::ProbeOutcome;
use weir_core::catalog::{self, keys::KeyCipher, CatalogError};

use super::Gateway;
use crate::{
    canonical::{CanonicalRequest, Message, Part, Role},
    upstream, wire,
};

/// Sends the test request through channel `id`.
pub async fn probe(gw: &Gateway, keys: &KeyCipher, id: i64) -> Result<ProbeOutcome, CatalogError> {
    // A channel saved a moment ago: its host joins the resolver's trusted set (if local) now,
    // not at the next poll.
    gw.catalog.refresh(false).await?;
    let target = match catalog::channels::probe_target(&gw.db, keys, id).await {
        Ok(t) => t,
        Err(CatalogError::Invalid { message, .. }) => {
            return Ok(ProbeOutcome {
                channel_id: id,
                ok: false,
                summary: message,
            })
        }
        Err(e) => return Err(e),
    };
    let mut req = CanonicalRequest::new(
        target.model.upstream_model.clone(),
        vec![Message::new(Role::User, vec![Part::Text("ping".into())])],
    );
    req.max_output_tokens = Some(1);
    let started = Instant::now();
    let outcome = async {
        let out = upstream::chat_request(&target, &req, None)?;
        let resp = upstream::send(&gw.http, out, &gw.timeouts).await?;
        let status = resp.status().as_u16();
        let body = upstream::read_body(resp, &gw.timeouts).await?;
        let answer = wire::decode_response(target.channel.wire, &body)?;
        let text: String = answer
            .choices
            .first()
            .and_then(|c| c.text.clone())
            .unwrap_or_default()
            .chars()
            .take(80)
            .collect();
        Ok::<_, crate::error::GatewayError>((status, text))
    }
    .await;
    let ms = started.elapsed().as_millis();
    Ok(match outcome {
        Ok((status, text)) => ProbeOutcome {
            channel_id: id,
            ok: true,
            summary: format!(
                "HTTP {status} in {ms} ms from {} ({}): {text:?}",
                target.model.id, target.model.upstream_model
            ),
        },
        Err(e) => ProbeOutcome {
            channel_id: id,
            ok: false,
            summary: format!("Failed after {ms} ms ({:?}): {}", e.kind, e.message),
        },
    })
}
