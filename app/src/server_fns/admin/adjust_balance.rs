//! `admin_adjust_balance`: credit (or, negative, debit) a team through the ledger with a
//! required reason, the operator recorded as the actor. The same domain call as `weir credit`.

use leptos::prelude::*;

use crate::error::AppError;

#[server(endpoint = "admin/adjust_balance")]
pub async fn admin_adjust_balance(
    team_id: i64,
    amount: String,
    reason: String,
    #[server(default)] csrf: String,
) -> Result<(), AppError> {
    use crate::ssr;
    use weir_core::{billing, money::Micros};
    ssr::run(async move {
        let caller = ssr::mutation(&csrf).await?;
        caller.operator()?;
        let amount = Micros::parse_usd(amount.trim().trim_start_matches('$'))
            .ok()
            .filter(|m| m.0 != 0)
            .ok_or_else(|| {
                AppError::field("amount", "A non-zero dollar amount, like 25.00 or -5.")
            })?;
        let reason = reason.trim();
        if reason.is_empty() || reason.chars().count() > 500 {
            return Err(AppError::field(
                "reason",
                "Say why, in up to 500 characters.",
            ));
        }
        let actor = format!("user:{}", caller.user.id);
        billing::credit_by(&caller.state.db, team_id, amount, reason, None, &actor)
            .await
            .map_err(|e| match e {
                billing::BillingError::UnknownTeam(_) => AppError::NotFound,
                billing::BillingError::InvalidAmount(m) => AppError::field("amount", m),
                e => ssr::internal("adjusting a balance", e),
            })?;
        Ok(())
    })
    .await
}
