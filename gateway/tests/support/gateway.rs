//! A gateway started in this process (test config, temporary data directory) and JSON requests
//! against its HTTP API, shared by the API tests.

use serde_json::Value;

pub struct TestGateway {
    _server: roomcast::RunningServer,
    pub base: String,
    pub http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl TestGateway {
    /// `tune` adjusts the test config (API key, secret, origins …) before the start.
    pub async fn start(tune: impl FnOnce(&mut roomcast::Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = roomcast::Config::for_tests(dir.path());
        tune(&mut config);
        let server = roomcast::start(config).await.unwrap();
        let base = format!("http://{}", server.http_addr);
        Self { _server: server, base, http: reqwest::Client::new(), _dir: dir }
    }

    /// POST a JSON body (with `Authorization: Bearer` when given): the status and JSON answer.
    pub async fn post(&self, path: &str, body: Value, bearer: Option<&str>) -> (u16, Value) {
        let mut req = self.http.post(format!("{}{path}", self.base)).json(&body);
        if let Some(b) = bearer {
            req = req.bearer_auth(b);
        }
        let r = req.send().await.unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }
}
