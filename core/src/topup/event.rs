//! The parts of Stripe's webhook events Weir reads, parsed from the verified raw body. Fields
//! Weir does not need are ignored; the ones it needs are optional here and checked where used,
//! so that an event of an unexpected shape is ignored rather than failing the delivery.

use std::collections::HashMap;

use serde::Deserialize;

/// The event envelope.
#[derive(Clone, Debug, Deserialize)]
pub struct Event {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub livemode: bool,
    #[serde(default)]
    pub data: EventData,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct EventData {
    #[serde(default)]
    pub object: serde_json::Value,
}

/// A Checkout Session (`checkout.session.*`).
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Session {
    pub id: String,
    pub client_reference_id: Option<String>,
    #[serde(default)]
    pub metadata: HashMap<String, String>,
    pub amount_total: Option<i64>,
    pub currency: Option<String>,
    pub payment_status: Option<String>,
    #[serde(default, deserialize_with = "id_or_object")]
    pub payment_intent: Option<String>,
}

/// A Charge (`charge.succeeded`, `charge.refunded`); its metadata is the PaymentIntent's.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Charge {
    pub id: String,
    #[serde(default, deserialize_with = "id_or_object")]
    pub payment_intent: Option<String>,
    #[serde(default)]
    pub metadata: HashMap<String, String>,
    pub amount: Option<i64>,
    #[serde(default)]
    pub amount_refunded: i64,
    pub currency: Option<String>,
    pub receipt_url: Option<String>,
}

/// A Dispute (`charge.dispute.*`).
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Dispute {
    pub id: String,
    #[serde(default, deserialize_with = "id_or_object")]
    pub payment_intent: Option<String>,
    pub amount: Option<i64>,
    pub currency: Option<String>,
    pub status: Option<String>,
}

/// An expandable field: the id, or the expanded object's `id`.
fn id_or_object<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let v = serde_json::Value::deserialize(d)?;
    Ok(match v {
        serde_json::Value::String(s) => Some(s),
        serde_json::Value::Object(o) => o.get("id").and_then(|i| i.as_str()).map(str::to_owned),
        _ => None,
    })
}

impl Event {
    /// The event's object as `T`, or `None` when it does not have that shape.
    pub fn object<T: serde::de::DeserializeOwned>(&self) -> Option<T> {
        serde_json::from_value(self.data.object.clone()).ok()
    }
}
