//! Who may read a room's HLS stream: anyone for a public room, a signed URL for a private one
//! (`auth::hls_url`). Installed on the HLS store at start.

use std::sync::Arc;

use hls_out::Denied;

use super::Rooms;
use crate::auth::hls_url::HlsUrls;
use crate::clock::unix_now;

/// The hls-out access hook: rooms with `private: true` need a signed URL; all else is public
/// (unknown rooms too: they have no stream, hls-out answers 404).
pub struct PrivateRooms {
    rooms: Arc<Rooms>,
    urls: HlsUrls,
}

impl PrivateRooms {
    pub fn new(rooms: Arc<Rooms>, urls: HlsUrls) -> Self {
        Self { rooms, urls }
    }
}

impl hls_out::AccessCheck for PrivateRooms {
    fn check(&self, room: &str, query: &[(String, String)]) -> Result<Option<String>, Denied> {
        // An ended room's final playlist may still be served: it stays private.
        match self.rooms.settings_for_access(room) {
            Some(settings) if settings.private => self.urls.check(room, query, unix_now()).map(Some),
            _ => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::RoomSettings;
    use hls_out::AccessCheck;

    fn urls() -> HlsUrls {
        HlsUrls::from_token_secret(b"test-secret-test-secret-test-secret")
    }

    fn pairs(url: &str) -> Vec<(String, String)> {
        hls_out::signed::pairs(url.split_once('?').map_or("", |(_, q)| q))
    }

    #[tokio::test]
    async fn the_hook_guards_private_rooms_only() {
        let rooms = Arc::new(Rooms::new(1));
        let public = rooms.create("Open".into(), RoomSettings::default());
        let private = rooms.create("Closed".into(), RoomSettings { private: true, ..Default::default() });
        let hook = PrivateRooms::new(rooms.clone(), urls());
        assert_eq!(hook.check(&public.id, &[]), Ok(None));
        assert_eq!(hook.check("r-unknown", &[]), Ok(None));
        assert!(matches!(hook.check(&private.id, &[]), Err(Denied::Unauthenticated(_))));
        let exp = unix_now() + 60;
        let ok = hook.check(&private.id, &pairs(&urls().playlist_url(&private.id, exp))).unwrap();
        assert_eq!(ok, Some(urls().query(&private.id, exp)));
        // An ended room's final playlist is served a while longer: still private.
        assert!(rooms.end_if_empty(&private.id).is_some());
        assert!(matches!(hook.check(&private.id, &[]), Err(Denied::Unauthenticated(_))));
    }
}
