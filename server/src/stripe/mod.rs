//! Stripe: creating Checkout Sessions for top-ups ([`Checkout`], through async-stripe), the
//! webhook that credits them ([`webhook`]), and a fake Stripe for tests and the demo
//! ([`fake`], `weir mock-stripe`). The money logic itself is `weir_core::topup`.

pub mod fake;
pub mod webhook;

use std::{sync::Arc, time::Duration};

use stripe::{ClientBuilder, IdempotencyKey, RequestStrategy, StripeRequest};
use stripe_checkout::checkout_session::{
    CreateCheckoutSession, CreateCheckoutSessionLineItems, CreateCheckoutSessionLineItemsPriceData,
    CreateCheckoutSessionPaymentIntentData, ProductData,
};
use weir_core::topup::{CheckoutLink, StartCheckout, Topup};

use crate::config::StripeConfig;

/// How long one attempt to create a session may take.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(20);
/// Attempts per session, all with the same idempotency key (so at most one session exists).
const ATTEMPTS: u32 = 3;

/// Creates Checkout Sessions on the configured Stripe.
#[derive(Clone)]
pub struct Checkout {
    client: stripe::Client,
    /// This server's public base URL, for the success and cancel redirects.
    public_url: String,
}

impl Checkout {
    pub fn new(config: &StripeConfig, public_url: &str) -> anyhow::Result<Checkout> {
        let client = ClientBuilder::new(config.secret_key.expose_str())
            .url(format!("{}/", config.api_base))
            .timeout(ATTEMPT_TIMEOUT)
            .build()
            .map_err(|e| anyhow::anyhow!("Stripe client: {e}"))?;
        Ok(Checkout {
            client,
            public_url: public_url.trim_end_matches('/').to_owned(),
        })
    }

    /// The request for `topup`'s session: one line item of its amount, the team and top-up ids
    /// in `client_reference_id` and in the metadata of the session and of the payment intent.
    fn request(&self, t: &Topup) -> CreateCheckoutSession {
        let mut price = CreateCheckoutSessionLineItemsPriceData::new(stripe_types::Currency::USD);
        price.unit_amount = Some(t.cents());
        price.product_data = Some(ProductData::new("Weir API credit"));
        let mut item = CreateCheckoutSessionLineItems::new();
        item.price_data = Some(price);
        item.quantity = Some(1);
        let metadata: std::collections::HashMap<String, String> = [
            ("team_id".to_owned(), t.team_id.to_string()),
            ("topup_id".to_owned(), t.id.clone()),
        ]
        .into();
        let mut intent = CreateCheckoutSessionPaymentIntentData::new();
        intent.metadata = Some(metadata.clone());
        CreateCheckoutSession::new()
            .mode(stripe_shared::CheckoutSessionMode::Payment)
            .line_items(vec![item])
            .client_reference_id(t.team_id.to_string())
            .metadata(metadata)
            .payment_intent_data(intent)
            .success_url(format!(
                "{}/billing?topup={}&session_id={{CHECKOUT_SESSION_ID}}",
                self.public_url, t.id
            ))
            .cancel_url(format!(
                "{}/billing?topup={}&cancelled=1",
                self.public_url, t.id
            ))
    }

    /// Creates (or, for a retry, gets back) the top-up's session. Transport failures and
    /// Stripe 5xx/429 are retried with the same `Idempotency-Key`.
    pub async fn create(&self, t: &Topup) -> Result<CheckoutLink, String> {
        let key = IdempotencyKey::new(t.idempotency_key()).map_err(|e| e.to_string())?;
        let req = self.request(t);
        let mut last = String::new();
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(250 << attempt)).await;
            }
            let res = req
                .customize()
                .request_strategy(RequestStrategy::Idempotent(key.clone()))
                .send(&self.client)
                .await;
            match res {
                Ok(s) => {
                    let url = s.url.ok_or("Stripe returned a session without a URL")?;
                    return Ok(CheckoutLink {
                        session_id: s.id.to_string(),
                        url,
                    });
                }
                Err(stripe::StripeError::Stripe(e, status))
                    if !(status == 429 || status >= 500) =>
                {
                    return Err(format!(
                        "Stripe refused the session ({status}): {}",
                        e.message.unwrap_or_default()
                    ));
                }
                Err(e) => {
                    tracing::warn!(topup = %t.id, attempt, error = %e, "creating a Checkout Session failed");
                    last = e.to_string();
                }
            }
        }
        Err(last)
    }

    /// The console's hook for starting a checkout.
    pub fn starter(self) -> StartCheckout {
        let this = Arc::new(self);
        Arc::new(move |t: Topup| {
            let this = this.clone();
            Box::pin(async move { this.create(&t).await })
        })
    }
}
