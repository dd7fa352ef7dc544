//! `start_topup`: writes a pending top-up of the chosen amount for the current team, creates
//! its Stripe Checkout Session and sends the browser there. Nothing is credited here: only
//! the verified webhook credits.

use leptos::prelude::*;

use crate::error::AppError;

#[server(endpoint = "billing/start_topup")]
pub async fn start_topup(
    amount: String,
    #[server(default)] csrf: String,
) -> Result<String, AppError> {
    use crate::ssr;
    use weir_core::{money::Micros, topup};
    ssr::run(async move {
        let caller = ssr::mutation(&csrf).await?;
        let team_id = caller.managed_team()?;
        let settings = caller.state.topups.clone();
        let checkout = settings.checkout.ok_or_else(|| {
            AppError::Invalid(
                "Top-ups are not enabled on this server: it has no Stripe key.".into(),
            )
        })?;
        let limits = settings.limits;
        let bounds = || {
            AppError::field(
                "amount",
                format!(
                    "Enter an amount from ${} to ${}, in whole cents.",
                    limits.min, limits.max
                ),
            )
        };
        let amount = Micros::parse_usd(
            amount
                .trim()
                .trim_start_matches('$')
                .replace(',', "")
                .as_str(),
        )
        .map_err(|_| bounds())?;
        let db = &caller.state.db;
        let t = topup::create(db, team_id, Some(caller.user.id), amount, &limits)
            .await
            .map_err(|e| match e {
                topup::TopupError::Amount { .. } => bounds(),
                e => ssr::internal("starting a top-up", e),
            })?;
        match checkout(t.clone()).await {
            Ok(link) => {
                topup::attach_session(db, &t.id, &link.session_id, &link.url)
                    .await
                    .map_err(|e| ssr::internal("recording a Checkout Session", e))?;
                leptos_axum::redirect(&link.url);
                Ok(link.url)
            }
            Err(e) => {
                tracing::error!(topup = %t.id, error = %e, "creating a Checkout Session failed");
                if let Err(e) =
                    topup::fail_start(db, &t.id, "Stripe could not create the checkout").await
                {
                    tracing::error!(topup = %t.id, error = %e, "marking a top-up failed");
                }
                Err(AppError::Invalid(
                    "Stripe could not start the payment; nothing was charged. Please try again."
                        .into(),
                ))
            }
        }
    })
    .await
}
