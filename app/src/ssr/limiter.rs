//! Log-in throttling per account and per client address (GCRA from `governor`), so that
//! password guessing is slow whichever of the two an attacker varies.

use std::{net::IpAddr, num::NonZeroU32};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// Attempts allowed per account and per address: a burst, then one every few seconds.
const BURST: u32 = 10;
const PER_MINUTE: u32 = 10;

pub struct LoginLimiter {
    by_account: DefaultKeyedRateLimiter<String>,
    by_address: DefaultKeyedRateLimiter<IpAddr>,
}

impl Default for LoginLimiter {
    fn default() -> Self {
        let quota = Quota::per_minute(NonZeroU32::new(PER_MINUTE).unwrap_or(NonZeroU32::MIN))
            .allow_burst(NonZeroU32::new(BURST).unwrap_or(NonZeroU32::MIN));
        LoginLimiter {
            by_account: RateLimiter::keyed(quota),
            by_address: RateLimiter::keyed(quota),
        }
    }
}

impl LoginLimiter {
    /// True if one more attempt for this account from this address is allowed now. Both
    /// limits are charged, so an attacker cannot spread guesses over either.
    pub fn allow(&self, email: &str, address: Option<IpAddr>) -> bool {
        let account_ok = self
            .by_account
            .check_key(&email.trim().to_lowercase())
            .is_ok();
        let address_ok = address.is_none_or(|a| self.by_address.check_key(&a).is_ok());
        if self.by_account.len() > 100_000 {
            self.by_account.retain_recent();
        }
        if self.by_address.len() > 100_000 {
            self.by_address.retain_recent();
        }
        account_ok && address_ok
    }
}
