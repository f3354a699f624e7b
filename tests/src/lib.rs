//! Synthetic participants: clients that join a Roomcast room exactly as a browser does
//! (HTTP join, WebSocket signaling, two WebRTC PeerConnections), publish real encoded media
//! and decode what they receive, so tests and benchmarks can check what arrives.

pub mod synthetic;
