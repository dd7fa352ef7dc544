//! Browser entry point: hydrates the server-rendered Weir console.

#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(weir_app::App);
}
