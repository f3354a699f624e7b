//! The HTTP side of a cluster: a request about a room that another live node owns is sent
//! there (`307`, method and body kept), and joins name the owner's signaling URL. A room this
//! node owns, or claims because nobody (alive) does, is served here as on a single node.

use axum::extract::{OriginalUri, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use crate::clock::unix_now;
use crate::cluster::Owner;
use crate::state::AppState;
use crate::store::{NodeRecord, Write};

/// The live node that owns `room`, if it is not this one. `None` also without a cluster, for a
/// room held here, and for an unknown room (whose handler answers 404: no claim is made for
/// ids nobody created).
pub async fn owner_elsewhere(app: &AppState, room: &str) -> Result<Option<NodeRecord>, ApiError> {
    let Some(cluster) = &app.cluster else { return Ok(None) };
    if app.rooms.get(room).is_some() {
        return Ok(None);
    }
    let unavailable = |e: crate::store::StoreError| {
        tracing::error!(room, error = %e, "cannot find which node owns a room");
        ApiError::unavailable(format!("the room's node could not be looked up: {e}"))
    };
    if app.rooms.find(room).await.map_err(unavailable)?.is_none() {
        return Ok(None);
    }
    match cluster.locate(room).await.map_err(unavailable)? {
        Owner::Here => Ok(None),
        Owner::TakenOver(dead) => {
            resume_broadcast(app, room, &dead).await;
            Ok(None)
        }
        Owner::There(node) => Ok(Some(node)),
    }
}

/// A room taken over from a dead node: if its broadcast was live there (its record is still
/// open), it goes live here, with placeholders until the participants are back.
async fn resume_broadcast(app: &AppState, room: &str, dead: &str) {
    let Some(store) = app.rooms.store() else { return };
    let was_live = match store.broadcasts(room).await {
        Ok(b) => b.last().is_some_and(|b| b.stopped_at.is_none()),
        Err(e) => {
            tracing::error!(room, error = %e, "cannot read the broadcasts of a room taken over; start its broadcast by hand if it was live");
            return;
        }
    };
    if !was_live {
        return;
    }
    let entry = match app.rooms.reopen(room).await {
        Ok(Some(entry)) => entry,
        Ok(None) => return,
        Err(e) => {
            tracing::error!(room, error = %e, "cannot load a room taken over; start its broadcast by hand");
            return;
        }
    };
    if entry.settings.e2ee {
        return;
    }
    match app.broadcasts.start(room, app.workers[entry.worker].clone()) {
        Ok(()) => {
            app.rooms.record(Write::BroadcastStarted { room: room.to_owned(), at: unix_now() });
            tracing::warn!(room, dead_node = %dead, "broadcast restarted here: its node stopped heartbeating while it was live");
        }
        Err(e) => tracing::info!(room, error = %e, "broadcast of a room taken over not restarted"),
    }
}

/// Middleware for routes about one room (`/api/rooms/{id}/…`, `/api/ops/pipelines/{id}/…`,
/// `/hls/{id}/…`): sends the request to the room's node when that is another one.
pub async fn follow_owner(State(app): State<AppState>, req: Request, next: Next) -> Response {
    if app.cluster.is_none() {
        return next.run(req).await;
    }
    // Inside `/api` the router sees the path without its prefix; the redirect needs all of it.
    let uri = req.extensions().get::<OriginalUri>().map_or_else(|| req.uri().clone(), |o| o.0.clone());
    let Some(room) = super::room_of_path(uri.path()).map(str::to_owned) else { return next.run(req).await };
    match owner_elsewhere(&app, &room).await {
        Ok(None) => next.run(req).await,
        Ok(Some(node)) => {
            let path = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
            tracing::debug!(room, node = %node.id, "request sent to the room's node");
            (StatusCode::TEMPORARY_REDIRECT, [(header::LOCATION, node.url(path)), (header::CACHE_CONTROL, "no-store".to_owned())])
                .into_response()
        }
        Err(e) => e.into_response(),
    }
}
