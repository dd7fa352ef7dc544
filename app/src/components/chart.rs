//! The 30-day spend chart: an SVG drawn by Weir itself (no chart script, no CDN).

use leptos::prelude::*;

use super::format;

const W: i64 = 600;
const H: i64 = 160;
const PAD: i64 = 24;

/// Bars of spend per day, oldest on the left; each bar has a tooltip with day and amount.
#[component]
pub fn SpendChart(days: Vec<(i64, i64)>) -> impl IntoView {
    let max = days.iter().map(|(_, v)| *v).max().unwrap_or(0).max(1);
    let n = i64::try_from(days.len()).unwrap_or(1).max(1);
    let slot = (W - 2 * PAD) / n;
    let total: i64 = days.iter().map(|(_, v)| *v).sum();
    let label = format!(
        "Spend per day over the last {} days, {} in total",
        days.len(),
        format::usd(total)
    );
    let first = days
        .first()
        .map(|(d, _)| format::date(*d))
        .unwrap_or_default();
    let last = days
        .last()
        .map(|(d, _)| format::date(*d))
        .unwrap_or_default();
    let bars = days
        .into_iter()
        .enumerate()
        .map(|(i, (day, v))| {
            let i = i64::try_from(i).unwrap_or(0);
            let h = if v > 0 {
                (i128::from(v) * i128::from(H - 2 * PAD) / i128::from(max)).max(2)
            } else {
                0
            };
            let h = i64::try_from(h).unwrap_or(0);
            let x = PAD + i * slot + 1;
            let y = H - PAD - h;
            view! {
                <rect x=x y=y width=(slot - 2).max(1) height=h class="bar">
                    <title>{format!("{}: {}", format::date(day), format::usd(v))}</title>
                </rect>
            }
        })
        .collect_view();
    let aria = label.clone();
    view! {
        <svg class="chart" viewBox=format!("0 0 {W} {H}") role="img" aria-label=aria>
            <title>{label}</title>
            <line x1=PAD y1=H - PAD x2=W - PAD y2=H - PAD class="axis"></line>
            <text x=PAD y=H - 6 class="tick">{first}</text>
            <text x=W - PAD y=H - 6 class="tick end">{last}</text>
            <text x=PAD y=PAD - 8 class="tick">{format!("max {}", format::usd(max))}</text>
            {bars}
        </svg>
    }
}
