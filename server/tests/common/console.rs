//! Console personas: a browser-like client (one session cookie, the page's CSRF token, this
//! server's Origin) that signs up, logs in and calls the console's server functions over
//! real HTTP, the way the hydrated pages and plain forms do.

use serde_json::Value;

use super::TestApp;

/// The password every persona signs up with.
pub const PASSWORD: &str = "correct horse battery";

pub struct Browser {
    base: String,
    http: reqwest::Client,
    /// `weir_session=<id>`, as the last response set it.
    cookie: Option<String>,
    /// Sent as `Origin` on every POST (`None`: no Origin and no Referer).
    pub origin: Option<String>,
}

/// A server function's answer: the status and the JSON body (`Null` when it is not JSON).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

impl Browser {
    pub fn new(app: &TestApp) -> Browser {
        Browser {
            base: app.base.clone(),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(super::REQUEST_TIMEOUT)
                .build()
                .unwrap(),
            cookie: None,
            origin: Some(app.base.clone()),
        }
    }

    /// A new account (and its personal team), signed in.
    pub async fn sign_up(app: &TestApp, email: &str) -> Browser {
        let mut b = Browser::new(app);
        let a = b
            .call(
                "auth/sign_up",
                &[
                    ("email", email),
                    ("password", PASSWORD),
                    ("next", "/dashboard"),
                ],
            )
            .await;
        assert!(a.status < 400, "sign up {email}: {a:?}");
        b
    }

    /// The session id this browser holds.
    pub fn session_id(&self) -> Option<String> {
        self.cookie.clone()
    }

    /// Replaces the session cookie (to replay an old one).
    pub fn set_session_id(&mut self, cookie: Option<String>) {
        self.cookie = cookie;
    }

    fn keep_cookie(&mut self, r: &reqwest::Response) {
        for v in r.headers().get_all(reqwest::header::SET_COOKIE) {
            let Ok(v) = v.to_str() else { continue };
            let pair = v.split(';').next().unwrap_or_default().trim();
            if let Some(value) = pair.strip_prefix("weir_session=") {
                // An expired or empty cookie removes the session.
                let gone = value.is_empty() || v.contains("Max-Age=0");
                self.cookie = (!gone).then(|| pair.to_owned());
            }
        }
    }

    /// GET a page; its status and body.
    pub async fn get(&mut self, path: &str) -> (u16, String) {
        let mut req = self.http.get(format!("{}{path}", self.base));
        if let Some(c) = &self.cookie {
            req = req.header(reqwest::header::COOKIE, c);
        }
        let r = req.send().await.unwrap();
        self.keep_cookie(&r);
        let status = r.status().as_u16();
        (status, r.text().await.unwrap_or_default())
    }

    /// POSTs a form to `/api/<endpoint>` as given (no token added).
    pub async fn post(&mut self, endpoint: &str, form: &[(&str, &str)]) -> Answer {
        let mut req = self
            .http
            .post(format!("{}/api/{endpoint}", self.base))
            .form(form);
        if let Some(c) = &self.cookie {
            req = req.header(reqwest::header::COOKIE, c);
        }
        if let Some(o) = &self.origin {
            req = req.header(reqwest::header::ORIGIN, o);
        }
        let r = req.send().await.unwrap();
        self.keep_cookie(&r);
        let status = r.status().as_u16();
        let text = r.text().await.unwrap_or_default();
        Answer {
            status,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
        }
    }

    /// The session's CSRF token (what every page's forms carry).
    pub async fn csrf(&mut self) -> String {
        let a = self.post("session/viewer", &[("path", "/login")]).await;
        a.body["csrf"].as_str().unwrap_or_default().to_owned()
    }

    /// Calls a server function with the session's CSRF token added.
    pub async fn call(&mut self, endpoint: &str, form: &[(&str, &str)]) -> Answer {
        let csrf = self.csrf().await;
        let mut form = form.to_vec();
        form.push(("csrf", &csrf));
        self.post(endpoint, &form).await
    }

    /// The signed-in user as the header sees them (`Null` when signed out).
    pub async fn viewer(&mut self) -> Value {
        self.post("session/viewer", &[("path", "/dashboard")])
            .await
            .body["user"]
            .clone()
    }

    /// The current team's id.
    pub async fn team_id(&mut self) -> i64 {
        self.viewer().await["team"]["id"].as_i64().unwrap()
    }

    /// Creates a key in the current team; its row id and secret.
    pub async fn create_key(&mut self, name: &str) -> (i64, String) {
        let a = self
            .call("keys/create_key", &[("name", name), ("environment", "dev")])
            .await;
        assert_eq!(a.status, 200, "create key: {a:?}");
        let secret = a.body.as_str().unwrap().to_owned();
        let keys = self.post("keys/list_keys", &[]).await.body;
        let id = keys["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["name"] == name)
            .unwrap()["id"]
            .as_i64()
            .unwrap();
        (id, secret)
    }
}
