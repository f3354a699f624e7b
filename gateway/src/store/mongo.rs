//! The MongoDB store (the official `mongodb` driver), chosen by a `mongodb://` URI in `--store`.
//! The database is the URI's default database, else `roomcast`. Collections: `rooms` (`_id` is
//! the room id), `sessions` (unique on room + participant), `stats_samples`, `broadcasts`,
//! `invites` (`_id` is the invite id: its use count and who holds its seats); in a cluster,
//! `nodes` (`_id` is the node id: its last heartbeat) and `room_owners` (`_id` is the room id).

use std::time::Duration;

use futures_util::TryStreamExt;
use mongodb::bson::{self, doc, Bson, Document};
use mongodb::options::{ClientOptions, IndexOptions, ReturnDocument};
use mongodb::{Client, Collection, Database, IndexModel};

use super::{
    redact, summarize, to_i64, to_u64, BroadcastEnd, BroadcastRecord, NodeLoad, NodeRecord, Result, RoomRecord, RoomSettings, Sample,
    SessionRecord, StatsSample, StatsSummary, Store, StoreError,
};

const DEFAULT_DATABASE: &str = "roomcast";
/// How long start-up waits for the server when the URI does not say (`serverSelectionTimeoutMS`).
const DEFAULT_SELECTION_TIMEOUT: Duration = Duration::from_secs(10);

pub struct MongoStore {
    rooms: Collection<Document>,
    sessions: Collection<Document>,
    samples: Collection<Document>,
    broadcasts: Collection<Document>,
    invites: Collection<Document>,
    nodes: Collection<Document>,
    owners: Collection<Document>,
}

impl MongoStore {
    /// Connects, checks the server answers, and creates the indexes.
    pub async fn connect(uri: &str) -> Result<Self> {
        let fail = |source| StoreError::Connect { uri: redact(uri), source };
        let mut options = ClientOptions::parse(uri).await.map_err(fail)?;
        options.server_selection_timeout.get_or_insert(DEFAULT_SELECTION_TIMEOUT);
        options.app_name.get_or_insert_with(|| "roomcast".to_owned());
        let client = Client::with_options(options).map_err(fail)?;
        let db = client.default_database().unwrap_or_else(|| client.database(DEFAULT_DATABASE));
        db.run_command(doc! { "ping": 1 }).await.map_err(fail)?;
        create_indexes(&db).await.map_err(fail)?;
        Ok(Self {
            rooms: db.collection("rooms"),
            sessions: db.collection("sessions"),
            samples: db.collection("stats_samples"),
            broadcasts: db.collection("broadcasts"),
            invites: db.collection("invites"),
            nodes: db.collection("nodes"),
            owners: db.collection("room_owners"),
        })
    }

    async fn samples_of(&self, participant: &str) -> Result<Vec<Sample>> {
        let docs: Vec<Document> =
            self.samples.find(doc! { "participant": participant }).sort(doc! { "at_ms": 1 }).await?.try_collect().await?;
        docs.iter().map(sample_from_doc).collect()
    }
}

/// Idempotent: creating an index that exists with the same keys and options is a no-op.
async fn create_indexes(db: &Database) -> mongodb::error::Result<()> {
    let index =
        |keys: Document, unique: bool| IndexModel::builder().keys(keys).options(IndexOptions::builder().unique(unique).build()).build();
    db.collection::<Document>("rooms").create_index(index(doc! { "ended_at": 1, "created_at": 1 }, false)).await?;
    let sessions = db.collection::<Document>("sessions");
    sessions.create_index(index(doc! { "room": 1, "participant": 1 }, true)).await?;
    sessions.create_index(index(doc! { "participant": 1 }, false)).await?;
    db.collection::<Document>("stats_samples").create_index(index(doc! { "participant": 1, "at_ms": 1 }, false)).await?;
    db.collection::<Document>("broadcasts").create_index(index(doc! { "room": 1, "started_at": 1 }, false)).await?;
    Ok(())
}

/// A write refused because the `_id` (or a unique index) exists already.
fn is_duplicate_key(e: &mongodb::error::Error) -> bool {
    use mongodb::error::{ErrorKind, WriteFailure};
    match e.kind.as_ref() {
        ErrorKind::Write(WriteFailure::WriteError(w)) => w.code == 11000,
        ErrorKind::Command(c) => c.code == 11000,
        _ => false,
    }
}

// Reading fields. Other drivers and servers may hand integers back as Int32 or Double.

fn malformed(key: &str, found: Option<&Bson>) -> StoreError {
    StoreError::Malformed(format!("field {key}: unexpected {found:?}"))
}

fn get_string(d: &Document, key: &str) -> Result<String> {
    d.get_str(key).map(str::to_owned).map_err(|_| malformed(key, d.get(key)))
}

fn get_opt_string(d: &Document, key: &str) -> Result<Option<String>> {
    match d.get(key) {
        None | Some(Bson::Null) => Ok(None),
        _ => get_string(d, key).map(Some),
    }
}

fn get_u64(d: &Document, key: &str) -> Result<u64> {
    match d.get(key) {
        Some(Bson::Int64(v)) => to_u64(*v, key),
        Some(Bson::Int32(v)) => to_u64(i64::from(*v), key),
        Some(Bson::Double(v)) if v.fract() == 0.0 => to_u64(*v as i64, key),
        other => Err(malformed(key, other)),
    }
}

fn get_opt_u64(d: &Document, key: &str) -> Result<Option<u64>> {
    match d.get(key) {
        None | Some(Bson::Null) => Ok(None),
        _ => get_u64(d, key).map(Some),
    }
}

fn get_u32(d: &Document, key: &str) -> Result<u32> {
    get_u64(d, key).map(|v| u32::try_from(v).unwrap_or(u32::MAX))
}

fn get_f64(d: &Document, key: &str) -> Result<f64> {
    match d.get(key) {
        Some(Bson::Double(v)) => Ok(*v),
        Some(Bson::Int32(v)) => Ok(f64::from(*v)),
        Some(Bson::Int64(v)) => Ok(*v as f64),
        other => Err(malformed(key, other)),
    }
}

fn opt_i64(v: Option<u64>) -> Bson {
    v.map_or(Bson::Null, |v| Bson::Int64(to_i64(v)))
}

// Records ⇄ documents.

fn room_doc(r: &RoomRecord) -> Result<Document> {
    let settings = bson::to_document(&r.settings).map_err(|e| StoreError::Malformed(format!("room settings: {e}")))?;
    Ok(doc! { "_id": &r.id, "name": &r.name, "settings": settings, "created_at": to_i64(r.created_at), "ended_at": opt_i64(r.ended_at) })
}

fn room_from_doc(d: &Document) -> Result<RoomRecord> {
    let settings = match d.get("settings") {
        Some(Bson::Document(s)) => {
            bson::from_document::<RoomSettings>(s.clone()).map_err(|e| StoreError::Malformed(format!("room settings: {e}")))?
        }
        None | Some(Bson::Null) => RoomSettings::default(),
        other => return Err(malformed("settings", other)),
    };
    Ok(RoomRecord {
        id: get_string(d, "_id")?,
        name: get_string(d, "name")?,
        settings,
        created_at: get_u64(d, "created_at")?,
        ended_at: get_opt_u64(d, "ended_at")?,
    })
}

fn summary_bson(s: Option<&StatsSummary>) -> Result<Bson> {
    match s {
        None => Ok(Bson::Null),
        Some(s) => bson::to_bson(s).map_err(|e| StoreError::Malformed(format!("stats summary: {e}"))),
    }
}

fn session_doc(s: &SessionRecord) -> Result<Document> {
    Ok(doc! {
        "room": &s.room, "participant": &s.participant, "name": &s.name, "role": &s.role,
        "user_agent": s.user_agent.as_deref().map_or(Bson::Null, Bson::from),
        "joined_at": to_i64(s.joined_at), "left_at": opt_i64(s.left_at), "stats": summary_bson(s.stats.as_ref())?,
    })
}

fn session_from_doc(d: &Document) -> Result<SessionRecord> {
    let stats = match d.get("stats") {
        None | Some(Bson::Null) => None,
        Some(b) => Some(bson::from_bson::<StatsSummary>(b.clone()).map_err(|e| StoreError::Malformed(format!("stats summary: {e}")))?),
    };
    Ok(SessionRecord {
        room: get_string(d, "room")?,
        participant: get_string(d, "participant")?,
        name: get_string(d, "name")?,
        role: get_string(d, "role")?,
        user_agent: get_opt_string(d, "user_agent")?,
        joined_at: get_u64(d, "joined_at")?,
        left_at: get_opt_u64(d, "left_at")?,
        stats,
    })
}

fn sample_doc(s: &StatsSample) -> Document {
    doc! { "room": &s.room, "participant": &s.participant, "at_ms": to_i64(s.at_ms), "bitrate_bps": to_i64(s.bitrate_bps), "loss": s.loss, "rtt_ms": s.rtt_ms }
}

fn sample_from_doc(d: &Document) -> Result<Sample> {
    Ok(Sample {
        at_ms: get_u64(d, "at_ms")?,
        bitrate_bps: get_u64(d, "bitrate_bps")?,
        loss: get_f64(d, "loss")?,
        rtt_ms: get_f64(d, "rtt_ms")?,
    })
}

fn broadcast_from_doc(d: &Document) -> Result<BroadcastRecord> {
    Ok(BroadcastRecord {
        room: get_string(d, "room")?,
        started_at: get_u64(d, "started_at")?,
        stopped_at: get_opt_u64(d, "stopped_at")?,
        restarts: get_u32(d, "restarts")?,
        viewers_peak: get_u32(d, "viewers_peak")?,
    })
}

#[async_trait::async_trait]
impl Store for MongoStore {
    fn kind(&self) -> &'static str {
        "mongodb"
    }

    async fn create_room(&self, room: &RoomRecord) -> Result<()> {
        self.rooms.replace_one(doc! { "_id": &room.id }, room_doc(room)?).upsert(true).await?;
        Ok(())
    }

    async fn end_room(&self, id: &str, at: u64) -> Result<()> {
        self.rooms.update_one(doc! { "_id": id, "ended_at": Bson::Null }, doc! { "$set": { "ended_at": to_i64(at) } }).await?;
        Ok(())
    }

    async fn room(&self, id: &str) -> Result<Option<RoomRecord>> {
        self.rooms.find_one(doc! { "_id": id }).await?.as_ref().map(room_from_doc).transpose()
    }

    async fn open_rooms(&self) -> Result<Vec<RoomRecord>> {
        let docs: Vec<Document> =
            self.rooms.find(doc! { "ended_at": Bson::Null }).sort(doc! { "created_at": 1, "_id": 1 }).await?.try_collect().await?;
        docs.iter().map(room_from_doc).collect()
    }

    async fn session_joined(&self, s: &SessionRecord) -> Result<()> {
        self.sessions.replace_one(doc! { "room": &s.room, "participant": &s.participant }, session_doc(s)?).upsert(true).await?;
        Ok(())
    }

    async fn session_left(&self, room: &str, participant: &str, at: u64) -> Result<()> {
        let stats = summarize(&self.samples_of(participant).await?);
        let update = doc! { "$set": { "left_at": to_i64(at), "stats": summary_bson(stats.as_ref())? } };
        self.sessions.update_one(doc! { "room": room, "participant": participant }, update).await?;
        Ok(())
    }

    async fn sessions(&self, room: &str) -> Result<Vec<SessionRecord>> {
        let docs: Vec<Document> =
            self.sessions.find(doc! { "room": room }).sort(doc! { "joined_at": 1, "participant": 1 }).await?.try_collect().await?;
        docs.iter().map(session_from_doc).collect()
    }

    async fn record_stats(&self, samples: &[StatsSample]) -> Result<()> {
        if !samples.is_empty() {
            self.samples.insert_many(samples.iter().map(sample_doc)).await?;
        }
        Ok(())
    }

    async fn summary(&self, participant: &str) -> Result<Option<StatsSummary>> {
        Ok(summarize(&self.samples_of(participant).await?))
    }

    async fn broadcast_started(&self, room: &str, at: u64) -> Result<()> {
        self.broadcasts.update_many(doc! { "room": room, "stopped_at": Bson::Null }, doc! { "$set": { "stopped_at": to_i64(at) } }).await?;
        let record = doc! { "room": room, "started_at": to_i64(at), "stopped_at": Bson::Null, "restarts": 0_i64, "viewers_peak": 0_i64 };
        self.broadcasts.insert_one(record).await?;
        Ok(())
    }

    async fn broadcast_stopped(&self, room: &str, end: &BroadcastEnd) -> Result<()> {
        let update = doc! { "$set": {
            "stopped_at": to_i64(end.stopped_at), "restarts": i64::from(end.restarts), "viewers_peak": i64::from(end.viewers_peak),
        } };
        self.broadcasts.update_many(doc! { "room": room, "stopped_at": Bson::Null }, update).await?;
        Ok(())
    }

    async fn broadcasts(&self, room: &str) -> Result<Vec<BroadcastRecord>> {
        let docs: Vec<Document> =
            self.broadcasts.find(doc! { "room": room }).sort(doc! { "started_at": 1, "_id": 1 }).await?.try_collect().await?;
        docs.iter().map(broadcast_from_doc).collect()
    }

    async fn invite_use(&self, invite: &str, participant: &str, max_uses: Option<u32>, at: u64) -> Result<Option<u32>> {
        // The invite's document first (a second insert of it is a harmless duplicate), then one
        // conditional update: the count check and the new seat are atomic.
        match self.invites.insert_one(doc! { "_id": invite, "uses": 0_i64, "seats": [], "at": to_i64(at) }).await {
            Ok(_) => {}
            Err(e) if is_duplicate_key(&e) => {}
            Err(e) => return Err(e.into()),
        }
        let mut filter = doc! { "_id": invite };
        if let Some(max) = max_uses {
            filter.insert("uses", doc! { "$lt": i64::from(max) });
        }
        let update = doc! { "$inc": { "uses": 1_i64 }, "$push": { "seats": participant }, "$set": { "at": to_i64(at) } };
        let after = self.invites.find_one_and_update(filter, update).return_document(ReturnDocument::After).await?;
        after.map(|d| get_u32(&d, "uses")).transpose()
    }

    async fn invite_rejoin(&self, invite: &str, previous: &str, participant: &str, at: u64) -> Result<bool> {
        // Only one rejoin can pull the previous seat; the new one is pushed after it.
        let pulled = self.invites.update_one(doc! { "_id": invite, "seats": previous }, doc! { "$pull": { "seats": previous } }).await?;
        if pulled.modified_count == 0 {
            return Ok(false);
        }
        self.invites.update_one(doc! { "_id": invite }, doc! { "$push": { "seats": participant }, "$set": { "at": to_i64(at) } }).await?;
        Ok(true)
    }

    async fn invite_uses(&self, invite: &str) -> Result<u32> {
        match self.invites.find_one(doc! { "_id": invite }).await? {
            Some(d) => get_u32(&d, "uses"),
            None => Ok(0),
        }
    }

    async fn node_heartbeat(&self, node: &NodeRecord) -> Result<()> {
        self.nodes.replace_one(doc! { "_id": &node.id }, node_doc(node)).upsert(true).await?;
        Ok(())
    }

    async fn nodes(&self) -> Result<Vec<NodeRecord>> {
        let docs: Vec<Document> = self.nodes.find(doc! {}).sort(doc! { "_id": 1 }).await?.try_collect().await?;
        docs.iter().map(node_from_doc).collect()
    }

    async fn room_owner(&self, room: &str) -> Result<Option<String>> {
        self.owners.find_one(doc! { "_id": room }).await?.map(|d| get_string(&d, "owner")).transpose()
    }

    async fn claim_room(&self, room: &str, expected: Option<&str>, node: &str) -> Result<bool> {
        // Either way one document operation: an insert that a duplicate `_id` refuses, or an
        // update whose filter holds the owner seen.
        match expected {
            None => match self.owners.insert_one(doc! { "_id": room, "owner": node }).await {
                Ok(_) => Ok(true),
                Err(e) if is_duplicate_key(&e) => Ok(false),
                Err(e) => Err(e.into()),
            },
            Some(old) => {
                let done = self.owners.update_one(doc! { "_id": room, "owner": old }, doc! { "$set": { "owner": node } }).await?;
                Ok(done.modified_count == 1)
            }
        }
    }
}

fn node_doc(n: &NodeRecord) -> Document {
    doc! {
        "_id": &n.id, "public_url": &n.public_url, "media_ip": &n.media_ip, "capacity_cores": n.capacity_cores,
        "rooms": i64::from(n.load.rooms), "broadcasts": i64::from(n.load.broadcasts), "participants": i64::from(n.load.participants), "cpu_cores": n.load.cpu_cores,
        "heartbeat_at_ms": to_i64(n.heartbeat_at_ms), "draining": n.draining,
    }
}

fn node_from_doc(d: &Document) -> Result<NodeRecord> {
    Ok(NodeRecord {
        id: get_string(d, "_id")?,
        public_url: get_string(d, "public_url")?,
        media_ip: get_string(d, "media_ip")?,
        capacity_cores: get_f64(d, "capacity_cores")?,
        load: NodeLoad {
            rooms: get_u32(d, "rooms")?,
            broadcasts: get_u32(d, "broadcasts")?,
            participants: get_u32(d, "participants")?,
            cpu_cores: get_f64(d, "cpu_cores")?,
        },
        heartbeat_at_ms: get_u64(d, "heartbeat_at_ms")?,
        draining: d.get_bool("draining").map_err(|_| malformed("draining", d.get("draining")))?,
    })
}
