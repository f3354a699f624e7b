//! An LL-HLS client that follows a live playlist the way a low-latency player does: start at
//! the newest independent part, then for each next part either fetch it as soon as it is
//! listed or request the preload-hinted part before it exists (the server answers when its
//! bytes are there), and reload the playlist with `_HLS_msn`/`_HLS_part` (blocking reload).
//! Every part (and init segment) goes out on a channel with the instants it was requested and
//! received.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tokio::sync::mpsc;

use super::playlist::{self, LivePlaylist, PartEntry, PartId};

/// What the follower got.
#[derive(Debug, Clone)]
pub enum HlsEvent {
    /// An init segment: a decoder starts (again) with it. Parts that follow start independent.
    /// Also sent again (same bytes) at a discontinuity: timestamps jump, start afresh.
    Init {
        uri: String,
        data: Vec<u8>,
        received_at: Instant,
    },
    Part(FetchedPart),
}

#[derive(Debug, Clone)]
pub struct FetchedPart {
    pub entry: PartEntry,
    pub data: Vec<u8>,
    pub requested_at: Instant,
    /// When the last byte had arrived.
    pub received_at: Instant,
    /// Requested as the preload hint (before it was listed).
    pub via_hint: bool,
}

/// Request counts of one follower.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FollowStats {
    pub playlist_requests: u64,
    pub blocking_requests: u64,
    /// Blocking reloads answered 503 (the server's wait timed out).
    pub blocking_timeouts: u64,
    pub parts: u64,
    pub parts_via_hint: u64,
    /// Hinted parts that never came (404: the segment ended before them).
    pub hint_misses: u64,
    pub inits: u64,
    pub bytes: u64,
}

/// `uri` (as written in the playlist) against the playlist's URL.
pub fn resolve(playlist_url: &str, uri: &str) -> String {
    if uri.starts_with("http://") || uri.starts_with("https://") {
        return uri.to_owned();
    }
    if uri.starts_with('/') {
        let scheme_end = playlist_url.find("://").map_or(0, |i| i + 3);
        let host_end = playlist_url[scheme_end..].find('/').map_or(playlist_url.len(), |i| i + scheme_end);
        return format!("{}{uri}", &playlist_url[..host_end]);
    }
    let path_end = playlist_url.find('?').unwrap_or(playlist_url.len());
    let dir_end = playlist_url[..path_end].rfind('/').map_or(0, |i| i + 1);
    format!("{}{uri}", &playlist_url[..dir_end])
}

/// Follows one live playlist.
pub struct Follower {
    http: reqwest::Client,
    playlist_url: String,
    pub stats: FollowStats,
}

enum Reload {
    Playlist(LivePlaylist),
    /// 503: nothing new in time; ask again.
    Again,
    /// 404: the stream is gone.
    Gone,
}

impl Follower {
    pub fn new(http: reqwest::Client, playlist_url: impl Into<String>) -> Self {
        Follower { http, playlist_url: playlist_url.into(), stats: FollowStats::default() }
    }

    async fn get(&mut self, url: &str) -> Result<(reqwest::StatusCode, Vec<u8>)> {
        let r = self.http.get(url).send().await.with_context(|| format!("GET {url}"))?;
        let status = r.status();
        let body = r.bytes().await.with_context(|| format!("GET {url}: body"))?.to_vec();
        self.stats.bytes += body.len() as u64;
        Ok((status, body))
    }

    async fn reload(&mut self, want: Option<PartId>) -> Result<Reload> {
        let url = match want {
            Some(p) => format!("{}?_HLS_msn={}&_HLS_part={}", self.playlist_url, p.msn, p.index),
            None => self.playlist_url.clone(),
        };
        self.stats.playlist_requests += 1;
        if want.is_some() {
            self.stats.blocking_requests += 1;
        }
        let url_for_err = url.clone();
        let (status, body) = self.get(&url).await?;
        match status.as_u16() {
            200 => Ok(Reload::Playlist(playlist::parse(&String::from_utf8_lossy(&body))?)),
            503 => {
                if want.is_some() {
                    self.stats.blocking_timeouts += 1;
                }
                Ok(Reload::Again)
            }
            404 => Ok(Reload::Gone),
            400 if want.is_some() => {
                // Too far ahead (our idea of the next part was wrong): a plain reload.
                Box::pin(self.reload(None)).await
            }
            s => bail!("GET {url_for_err}: {s}: {}", String::from_utf8_lossy(&body)),
        }
    }

    /// Waits (up to `timeout`) for a playlist with an independent part.
    pub async fn wait_live(&mut self, timeout: Duration) -> Result<LivePlaylist> {
        let end = Instant::now() + timeout;
        loop {
            if let Ok(Reload::Playlist(pl)) = self.reload(None).await {
                if pl.last_independent_part().is_some() {
                    return Ok(pl);
                }
            }
            if Instant::now() >= end {
                bail!("{}: no playable playlist within {timeout:?}", self.playlist_url);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn fetch_part(&mut self, entry: &PartEntry, via_hint: bool) -> Result<Option<FetchedPart>> {
        let url = resolve(&self.playlist_url, &entry.uri);
        let requested_at = Instant::now();
        let (status, data) = self.get(&url).await?;
        let received_at = Instant::now();
        match status.as_u16() {
            200 => {
                self.stats.parts += 1;
                if via_hint {
                    self.stats.parts_via_hint += 1;
                }
                Ok(Some(FetchedPart { entry: entry.clone(), data, requested_at, received_at, via_hint }))
            }
            404 if via_hint => {
                self.stats.hint_misses += 1;
                Ok(None)
            }
            s => bail!("GET {url}: {s}"),
        }
    }

    /// Follows the stream until it ends, `tx`'s receiver is dropped, or an error.
    pub async fn run(&mut self, tx: mpsc::UnboundedSender<HlsEvent>) -> Result<FollowStats> {
        let mut pl = self.wait_live(Duration::from_secs(30)).await?;
        let start = pl.last_independent_part().context("an independent part")?.clone();
        let mut want = start.id();
        let mut map: Option<(String, Vec<u8>)> = None;
        // After a new init, playback restarts at an independent part.
        let mut need_independent = true;
        // The segment whose discontinuity was last handled.
        let mut discontinuity_seen: Option<u64> = None;
        loop {
            if tx.is_closed() {
                break;
            }
            // 1. Everything listed from `want` on.
            let listed: Vec<PartEntry> = pl.parts().filter(|p| p.id() >= want).cloned().collect();
            for p in listed {
                if let Some(uri) = pl.map_uri_for(p.msn).map(str::to_owned) {
                    let discontinuity = p.index == 0 && pl.discontinuity_before(p.msn) && discontinuity_seen != Some(p.msn);
                    if discontinuity {
                        discontinuity_seen = Some(p.msn);
                    }
                    let new_map = map.as_ref().is_none_or(|(u, _)| *u != uri);
                    if new_map || discontinuity {
                        let data = match (&map, new_map) {
                            (Some((_, data)), false) => data.clone(),
                            _ => {
                                let (status, data) = self.get(&resolve(&self.playlist_url, &uri)).await?;
                                if !status.is_success() {
                                    bail!("GET {uri}: {status}");
                                }
                                self.stats.inits += 1;
                                data
                            }
                        };
                        if tx.send(HlsEvent::Init { uri: uri.clone(), data: data.clone(), received_at: Instant::now() }).is_err() {
                            return Ok(self.stats.clone());
                        }
                        map = Some((uri, data));
                        need_independent = true;
                    }
                }
                want = pl.successor(p.id());
                if need_independent && !p.independent {
                    continue;
                }
                need_independent = false;
                if let Some(f) = self.fetch_part(&p, false).await? {
                    if tx.send(HlsEvent::Part(f)).is_err() {
                        return Ok(self.stats.clone());
                    }
                }
            }
            if pl.ended {
                break;
            }
            // 2. The preload hint, when it is the part we want (or the next segment's first
            // while ours is still open): its bytes come as soon as it is complete.
            if let (Some(h), false) = (pl.preload_hint.clone(), need_independent) {
                let next_segment = PartId { msn: want.msn + 1, index: 0 };
                if (h.part == want || (h.part == next_segment && want.index > 0)) && map.is_some() {
                    let entry =
                        PartEntry { msn: h.part.msn, index: h.part.index, uri: h.uri, duration: 0.0, independent: h.part.index == 0 };
                    if let Some(f) = self.fetch_part(&entry, true).await? {
                        want = PartId { msn: h.part.msn, index: h.part.index + 1 };
                        if tx.send(HlsEvent::Part(f)).is_err() {
                            break;
                        }
                    }
                }
            }
            // 3. Blocking reload for the next part.
            loop {
                match self.reload(Some(want)).await? {
                    Reload::Playlist(p) => {
                        pl = p;
                        break;
                    }
                    Reload::Again => continue,
                    Reload::Gone => return Ok(self.stats.clone()),
                }
            }
        }
        Ok(self.stats.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_relative_and_absolute_uris() {
        let pl = "http://127.0.0.1:8080/hls/r-1/index.m3u8?_HLS_msn=3";
        assert_eq!(resolve(pl, "part-3.0.m4s"), "http://127.0.0.1:8080/hls/r-1/part-3.0.m4s");
        assert_eq!(resolve(pl, "/hls/r-1/init-1.mp4"), "http://127.0.0.1:8080/hls/r-1/init-1.mp4");
        assert_eq!(resolve(pl, "http://cdn/x.m4s"), "http://cdn/x.m4s");
    }
}
