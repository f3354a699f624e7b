//! Serves the built web app (web/dist). Client-side routes (`/room/{id}`, `/watch/{id}`, `/`)
//! get index.html; `ServeDir` refuses paths that climb out of the directory.

use std::path::Path;

use axum::Router;
use tower_http::services::{ServeDir, ServeFile};

use crate::state::AppState;

pub fn routes(web_dir: &Path) -> Router<AppState> {
    let index = ServeFile::new(web_dir.join("index.html"));
    Router::new().fallback_service(ServeDir::new(web_dir).fallback(index))
}
