// The sending side: our camera, microphone and screen tracks and the publish RTCPeerConnection
// that carries them (we offer, the server answers). Mute and camera on/off need no
// renegotiation (replaceTrack); a screen share, a preset that wants more simulcast layers and
// an ICE restart send a new offer. It reaches the session only through a PublisherHost.
import { Store } from '../store';
import { acquireLocalMedia, describeMediaError, openCamera, openMicrophone, openScreen, preferVp8, type LocalMedia, type MediaSettings } from './media';
import { PeerSide, errorText, log, type PeerHost } from './peer';
import { SCREEN_MAX_BITRATE, cameraEncodingChoices, cameraNeedsRepublish, videoConstraints, videoSendParameters, type VideoSource } from './presets';
import type { ClientMessage } from '../signaling';
import type { MediaStatus } from './state';

export interface PublisherHost extends PeerHost {
  notice(code: string, message: string): void;
  settings(): MediaSettings;
  /** The current pair of PeerConnections: names the E2EE transforms (`<gen>/publish/<n>`). */
  generation(): number;
}

/** A device's status after the media request: its track on or off, or why there is none. */
export function deviceStatus(hasTrack: boolean, muted: boolean, reported: MediaStatus): MediaStatus {
  if (hasTrack) return muted ? 'off' : 'ok';
  return reported === 'unavailable' ? 'unavailable' : 'off';
}

export type PublishSlot = 'camera' | 'mic' | 'screen';

/**
 * The m-lines of a new publish connection's first offer, in order; empty: nothing to publish.
 * The camera's comes first (others tell camera from screen by producer order) and is there
 * for any camera, even one that is off now, so turning it on needs no renegotiation.
 */
export function publishSlots(hasCamera: boolean, hasMic: boolean, sharing: boolean): PublishSlot[] {
  const slots: PublishSlot[] = [];
  if (hasCamera) slots.push('camera');
  if (hasMic) slots.push('mic');
  if (sharing) slots.push('screen');
  return slots;
}

/**
 * What a settings change does to the camera: a new camera is opened only while ours is on (off,
 * it opens with the new id when turned on); a new preset alone re-constrains the running track.
 */
export function cameraChange(before: MediaSettings, after: MediaSettings, camera: { track: boolean; on: boolean }): 'reopen' | 'constrain' | 'keep' {
  if (after.cameraId !== before.cameraId && camera.track && camera.on) return 'reopen';
  if (after.preset !== before.preset && camera.track) return 'constrain';
  return 'keep';
}

export class Publisher extends PeerSide<PublisherHost> {
  /** Our camera + microphone tracks (the local preview). */
  readonly localStream = new Store<MediaStream | null>(null);
  /** Our screen share, while sharing. */
  readonly screenStream = new Store<MediaStream | null>(null);
  private media: Promise<void> | null = null;
  private camTrack: MediaStreamTrack | null = null;
  private micTrack: MediaStreamTrack | null = null;
  private screenTrack: MediaStreamTrack | null = null;
  private cameraTx: RTCRtpTransceiver | null = null;
  private micTx: RTCRtpTransceiver | null = null;
  private screenTx: RTCRtpTransceiver | null = null;
  /** The browser would not set up simulcast layers for the camera: don't try again. */
  private simulcastRefused = false;
  private audioMuted = false;
  private videoMuted = false;
  private hasCamera = true;
  private hasMic = true;
  /** An ICE restart was asked for while an offer was out: its offer goes with the answer. */
  private restartPending = false;
  /** Lets the subscribe side go on once this connection's first offer is answered. */
  private answered: (() => void) | null = null;
  private senderCount = 0;
  /**
   * The connection's first offer until `publish` sends it: its SDP (the latest made: a screen
   * share started meanwhile renegotiates it), nothing to publish, our candidates so far.
   */
  private unsent: { sdp: string | null; nothing: boolean; candidates: ClientMessage[] } | null = null;
  /** The connection `prepare` made before the welcome, until the welcome takes it. */
  private prepared: RTCPeerConnection | null = null;
  private opened: Promise<void> | null = null;

  constructor(host: PublisherHost) {
    super('publish', host);
  }

  get isAudioMuted(): boolean {
    return this.audioMuted;
  }

  get isVideoMuted(): boolean {
    return this.videoMuted;
  }

  /** Our camera is on and has a track (the stats loop expects video from us). */
  get sendingVideo(): boolean {
    return !this.videoMuted && this.camTrack !== null;
  }

  /** Takes the lobby's camera + microphone, or asks for them; the first offer waits for this. */
  start(options: { media?: LocalMedia | null; audioMuted?: boolean; videoMuted?: boolean }): void {
    this.audioMuted = options.audioMuted ?? false;
    this.videoMuted = options.videoMuted ?? false;
    this.media = this.takeMedia(options.media);
  }

  private async takeMedia(media: LocalMedia | null | undefined): Promise<void> {
    const m = media ?? (await acquireLocalMedia(this.host.settings(), { video: !this.videoMuted, audio: true }));
    if (this.host.ended()) {
      m.stream?.getTracks().forEach((t) => t.stop());
      return;
    }
    this.camTrack = m.stream?.getVideoTracks()[0] ?? null;
    this.micTrack = m.stream?.getAudioTracks()[0] ?? null;
    this.hasCamera = m.camera !== 'unavailable';
    this.hasMic = m.mic !== 'unavailable';
    if (!this.camTrack) this.videoMuted = true;
    if (!this.micTrack) this.audioMuted = true;
    if (this.micTrack) this.micTrack.enabled = !this.audioMuted;
    this.publishLocalStream();
    this.host.dispatch({
      type: 'media',
      camera: deviceStatus(this.camTrack !== null, this.videoMuted, m.camera),
      mic: deviceStatus(this.micTrack !== null, this.audioMuted, m.mic),
    });
    if (m.problem) this.host.notice('media', m.problem);
  }

  private publishLocalStream(): void {
    const tracks = [this.camTrack, this.micTrack].filter((t): t is MediaStreamTrack => t !== null);
    this.localStream.set(tracks.length ? new MediaStream(tracks) : null);
  }

  /** The session ended: every track stops, also those still being opened. */
  stopMedia(): void {
    for (const t of [this.camTrack, this.micTrack, this.screenTrack]) t?.stop();
    this.camTrack = this.micTrack = this.screenTrack = null;
    void this.media?.then(() => {
      for (const t of [this.camTrack, this.micTrack]) t?.stop();
    });
    this.localStream.set(null);
    this.screenStream.set(null);
  }

  /** A new connection; resolves once its first offer is answered (or there is nothing to send). */
  open(): Promise<void> {
    this.pc = this.createPc();
    this.unsent = { sdp: null, nothing: false, candidates: [] };
    this.opened = new Promise<void>((resolve) => (this.answered = resolve));
    return this.opened;
  }

  override close(): void {
    super.close();
    this.cameraTx = this.micTx = this.screenTx = null;
    this.restartPending = false;
    this.unsent = null;
    this.prepared = null;
    this.opened = null;
  }

  /**
   * Opens the connection and makes its first offer before the welcome (right after the HTTP
   * join, while the socket opens): on a loaded browser the camera, the transceivers and the offer
   * take hundreds of milliseconds, which then no longer come after the welcome. `publish` sends it.
   */
  prepare(): void {
    this.close();
    void this.open();
    this.prepared = this.pc;
    this.queueFirstOffer();
  }

  /** After a welcome: the connection `prepare` made (resolves once answered), or null if there is none. */
  takePrepared(): Promise<void> | null {
    return this.prepared !== null && this.prepared === this.pc ? this.opened : null;
  }

  /** Our tracks on the new connection and its first offer, held in `unsent` until `publish`. */
  private queueFirstOffer(): void {
    const pc = this.pc;
    this.queue.push('first offer', async () => {
      await this.media;
      if (this.host.ended() || pc !== this.pc || !pc || !this.unsent) return;
      const slots = publishSlots(this.hasCamera, this.hasMic, this.screenTrack !== null);
      if (slots.length === 0) {
        this.unsent.nothing = true;
        return;
      }
      const stream = this.localStream.get() ?? new MediaStream();
      for (const slot of slots) {
        if (slot === 'camera') {
          this.cameraTx = this.addCameraTransceiver(pc, stream);
        } else if (slot === 'mic') {
          this.micTx = pc.addTransceiver(this.micTrack ?? 'audio', { direction: 'sendonly', streams: [stream] });
          this.encryptSender(this.micTx, 'audio');
        } else if (this.screenTrack) {
          this.addScreenTransceiver(pc, this.screenTrack);
        }
      }
      await this.sendOffer(pc);
    });
  }

  /** Sends the first offer of the connection `open` (or `prepare`) made, and our mute state. */
  publish(): void {
    const pc = this.pc;
    const welcomedAt = performance.now();
    if (this.prepared !== pc || pc === null) this.queueFirstOffer();
    this.prepared = null;
    this.queue.push('publish_offer', () => {
      const unsent = this.unsent;
      if (this.host.ended() || pc !== this.pc || !pc || !unsent) return;
      this.unsent = null;
      if (this.audioMuted || this.videoMuted) this.sendMediaState();
      if (unsent.nothing) {
        this.host.notice('not_publishing', 'Nobody can see or hear you: no camera or microphone.');
        this.releaseSubscribe();
        return;
      }
      if (unsent.sdp === null) return; // making the offer failed: already reported
      this.host.send({ type: 'publish_offer', sdp: unsent.sdp });
      for (const c of unsent.candidates) this.host.send(c);
      log(`publish offer sent ${Math.round(performance.now() - welcomedAt)} ms after welcome`);
    });
  }

  /** Our candidates wait while the first offer does: the server learns of the connection from it. */
  protected override sendLocalCandidate(msg: ClientMessage): void {
    if (this.unsent) this.unsent.candidates.push(msg);
    else this.host.send(msg);
  }

  /**
   * The camera's sendonly transceiver (VP8 first, encrypted in e2ee rooms) with simulcast layers
   * for the preset, or one encoding if the browser refuses them. The encodings are fixed until
   * the next publish: a preset or camera change re-maps the layers onto them (applySendParameters).
   */
  private addCameraTransceiver(pc: RTCPeerConnection, stream: MediaStream): RTCRtpTransceiver {
    const choices = cameraEncodingChoices(this.host.settings().preset, this.camTrack?.getSettings());
    const init = (sendEncodings: RTCRtpEncodingParameters[]): RTCRtpTransceiverInit => ({ direction: 'sendonly', streams: [stream], sendEncodings });
    let tx: RTCRtpTransceiver | null = null;
    if (choices.length > 1) {
      try {
        tx = pc.addTransceiver(this.camTrack ?? 'video', init(choices[0]));
        log(`camera simulcast: ${choices[0].map((e) => e.rid).join(', ')}`);
      } catch (e) {
        this.simulcastRefused = true;
        log(`simulcast refused (${errorText(e)}): one encoding`);
      }
    }
    tx ??= pc.addTransceiver(this.camTrack ?? 'video', init(choices[choices.length - 1]));
    preferVp8(tx);
    this.encryptSender(tx, 'video');
    return tx;
  }

  private addScreenTransceiver(pc: RTCPeerConnection, track: MediaStreamTrack): void {
    this.screenTx = pc.addTransceiver(track, { direction: 'sendonly', streams: [new MediaStream([track])], sendEncodings: [{ maxBitrate: SCREEN_MAX_BITRATE }] });
    preferVp8(this.screenTx);
    this.encryptSender(this.screenTx, 'video');
  }

  /** E2EE rooms: every frame of this sender is encrypted before it leaves (before the first one). */
  private encryptSender(tx: RTCRtpTransceiver, kind: 'audio' | 'video'): void {
    const e2ee = this.host.e2ee();
    if (e2ee) e2ee.attachSender(tx.sender, kind, `${this.host.generation()}/publish/${this.senderCount++}`);
  }

  private sendMediaState(): void {
    this.host.send({ type: 'media_state', audio_muted: this.audioMuted, video_muted: this.videoMuted });
  }

  private async sendOffer(pc: RTCPeerConnection): Promise<void> {
    const offer = await pc.createOffer();
    if (pc !== this.pc) return;
    await pc.setLocalDescription(offer);
    const sdp = pc.localDescription?.sdp ?? offer.sdp ?? '';
    if (this.unsent) this.unsent.sdp = sdp; // the first offer: `publish` sends the latest one
    else this.host.send({ type: 'publish_offer', sdp });
  }

  /** The first offer is answered (or there is nothing to publish): subscribe work may run. */
  private releaseSubscribe(): void {
    this.answered?.();
    this.answered = null;
  }

  /** A `publish_answer` for the connection we have now, applied in turn. */
  onAnswer(sdp: string): void {
    const pc = this.pc;
    this.queue.push('publish_answer', () => this.applyAnswer(pc, sdp));
  }

  private async applyAnswer(pc: RTCPeerConnection | null, sdp: string): Promise<void> {
    if (!pc || this.host.ended() || pc !== this.pc) return;
    if (pc.signalingState !== 'have-local-offer') {
      this.host.notice('bad_state', `Ignored a publish_answer: no offer outstanding (state ${pc.signalingState}).`);
      return;
    }
    await pc.setRemoteDescription({ type: 'answer', sdp });
    this.releaseSubscribe();
    await this.flushCandidates(pc);
    await this.applySendParameters();
    if (this.restartPending && pc === this.pc && !this.host.ended()) {
      // An ICE restart was asked for while this offer was out: its offer goes now.
      this.restartPending = false;
      pc.restartIce();
      await this.sendOffer(pc);
    }
  }

  /** restartIce and a new offer, the way a screen share renegotiates (after an offer in flight is answered). */
  restartIce(): void {
    const pc = this.pc;
    if (!pc) return;
    this.queue.push('ice restart', async () => {
      if (pc !== this.pc || this.host.ended()) return;
      if (pc.signalingState !== 'stable') {
        this.restartPending = true; // applyAnswer sends it
        return;
      }
      pc.restartIce();
      await this.sendOffer(pc);
    });
  }

  /** Bitrate caps per preset and degradation preference (camera balanced, screen keeps resolution). */
  private async applySendParameters(): Promise<void> {
    const preset = this.host.settings().preset;
    const apply = async (tx: RTCRtpTransceiver | null, source: VideoSource) => {
      if (!tx || tx.currentDirection === 'stopped') return;
      // The camera's picture size decides how many layers the browser will encode.
      const size = source === 'camera' ? this.camTrack?.getSettings() : undefined;
      try {
        await tx.sender.setParameters(videoSendParameters(tx.sender.getParameters(), source, preset, size));
      } catch (e) {
        // Older browsers refuse degradationPreference: keep the bitrate cap at least.
        try {
          const fixed = videoSendParameters(tx.sender.getParameters(), source, preset, size);
          delete (fixed as { degradationPreference?: unknown }).degradationPreference;
          await tx.sender.setParameters(fixed);
        } catch {
          log(`setParameters(${source}) failed: ${errorText(e)}`);
        }
      }
    };
    await apply(this.cameraTx, 'camera');
    await apply(this.screenTx, 'screen');
  }

  // ---- local media controls ----

  setMicEnabled(enabled: boolean): void {
    if (!this.micTrack || this.host.ended()) return;
    this.audioMuted = !enabled;
    this.micTrack.enabled = enabled;
    this.host.dispatch({ type: 'media', mic: enabled ? 'ok' : 'off' });
    this.sendMediaState();
  }

  /** Camera off stops the camera (its light goes off); on opens it again. No renegotiation. */
  async setCameraEnabled(enabled: boolean): Promise<void> {
    if (this.host.ended() || !this.hasCamera) return;
    if (!enabled) {
      this.videoMuted = true;
      this.host.dispatch({ type: 'media', camera: 'off' });
      this.sendMediaState();
      const old = this.camTrack;
      this.camTrack = null;
      this.publishLocalStream();
      await this.cameraTx?.sender.replaceTrack(null).catch(() => undefined);
      old?.stop();
      return;
    }
    this.host.dispatch({ type: 'media', camera: 'pending' });
    try {
      const track = await openCamera(this.host.settings());
      if (this.host.ended()) {
        track.stop();
        return;
      }
      this.camTrack?.stop();
      this.camTrack = track;
      this.videoMuted = false;
      this.publishLocalStream();
      await this.cameraTx?.sender.replaceTrack(track);
      this.host.dispatch({ type: 'media', camera: 'ok' });
      this.sendMediaState();
      await this.applySendParameters(); // this camera may give another size: re-map the layers
    } catch (e) {
      this.host.dispatch({ type: 'media', camera: 'off' });
      this.host.notice('media', `Could not start the camera: ${describeMediaError(e)}.`);
    }
  }

  /** Camera, microphone or preset changed mid-call (the host already has `after`): replaceTrack, no renegotiation. */
  async changeSettings(before: MediaSettings, after: MediaSettings): Promise<void> {
    let cameraChanged = false;
    try {
      const camera = cameraChange(before, after, { track: this.camTrack !== null, on: !this.videoMuted });
      if (camera === 'reopen' && this.camTrack) {
        const track = await openCamera(after);
        const old = this.camTrack;
        this.camTrack = track;
        await this.cameraTx?.sender.replaceTrack(track);
        old.stop();
        this.publishLocalStream();
        cameraChanged = true;
      } else if (camera === 'constrain' && this.camTrack) {
        await this.camTrack.applyConstraints(videoConstraints(after.preset));
      }
      if (after.micId !== before.micId && this.micTrack) {
        const track = await openMicrophone(after);
        track.enabled = !this.audioMuted;
        const old = this.micTrack;
        this.micTrack = track;
        await this.micTx?.sender.replaceTrack(track);
        old.stop();
        this.publishLocalStream();
      }
      if (after.preset !== before.preset || cameraChanged) await this.applySendParameters();
      if (after.preset !== before.preset) await this.republishCameraIfNeeded();
    } catch (e) {
      this.host.notice('media', `Could not switch the device: ${describeMediaError(e)}.`);
    }
  }

  /**
   * A preset that wants more simulcast layers than the camera's m-line was negotiated with
   * (Low → HD): the camera is published again on a new m-line with the new layers, and the
   * old one goes inactive (others see its producer replaced). See cameraNeedsRepublish.
   */
  private async republishCameraIfNeeded(): Promise<void> {
    const pc = this.pc;
    const old = this.cameraTx;
    if (!pc || !old || this.host.ended()) return;
    const negotiated = old.sender.getParameters().encodings?.length || 1;
    const opts = { screenSharing: this.screenTrack !== null, simulcastRefused: this.simulcastRefused };
    if (!cameraNeedsRepublish(negotiated, this.host.settings().preset, this.camTrack?.getSettings(), opts)) return;
    await this.queue.push('camera layers', async () => {
      if (pc !== this.pc || old !== this.cameraTx || this.host.ended()) return;
      await old.sender.replaceTrack(null);
      old.direction = 'inactive';
      const tx = this.addCameraTransceiver(pc, this.localStream.get() ?? new MediaStream());
      this.cameraTx = tx;
      log(`camera published again for the ${this.host.settings().preset} preset (${tx.sender.getParameters().encodings?.length ?? 1} encodings)`);
      await this.sendOffer(pc);
    });
  }

  /** Starts a screen share: a separate producer (a new sendonly m-line and a new publish_offer). */
  async startScreenShare(): Promise<void> {
    if (this.host.ended() || this.screenTrack) return;
    this.host.dispatch({ type: 'media', screen: 'starting' });
    let track: MediaStreamTrack;
    try {
      track = await openScreen();
    } catch (e) {
      this.host.dispatch({ type: 'media', screen: 'off' });
      if (!(e instanceof DOMException && e.name === 'NotAllowedError')) {
        this.host.notice('screen', `Could not share the screen: ${describeMediaError(e)}.`);
      }
      return;
    }
    if (this.host.ended()) {
      track.stop();
      return;
    }
    this.screenTrack = track;
    track.addEventListener('ended', () => void this.stopScreenShare()); // "Stop sharing" in the browser
    this.screenStream.set(new MediaStream([track]));
    this.host.dispatch({ type: 'media', screen: 'on' });
    const pc = this.pc;
    if (!pc) return; // published with the next welcome
    this.queue.push('screen share', async () => {
      if (pc !== this.pc || this.screenTrack !== track || this.screenTx) return; // (or in the first offer)
      this.addScreenTransceiver(pc, track);
      await this.sendOffer(pc);
    });
  }

  /** Stops the screen share: its m-line goes inactive (the producer is removed) with a new offer. */
  async stopScreenShare(): Promise<void> {
    const track = this.screenTrack;
    if (!track) return;
    this.screenTrack = null;
    track.stop();
    this.screenStream.set(null);
    this.host.dispatch({ type: 'media', screen: 'off' });
    const pc = this.pc;
    const tx = this.screenTx;
    this.screenTx = null;
    if (!pc || !tx || this.host.ended()) return;
    await this.queue.push('stop screen share', async () => {
      if (pc !== this.pc) return;
      await tx.sender.replaceTrack(null);
      tx.direction = 'inactive';
      await this.sendOffer(pc);
    });
  }
}
