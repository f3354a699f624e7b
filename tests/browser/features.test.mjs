// The room as people use it (issue 4): join by link through the lobby (preview, device and
// quality pickers), three participants see each other, mute shows on the others' tiles, chat and
// reactions arrive, a screen share appears on the others and goes away, switching the camera
// keeps the call, four people in a room, go live from the room and watch it.
// Saves the screenshots docs/screenshots/{lobby,room,watch}.png (the README links them).
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { REPO } from './lib/gateway.mjs';
import { frames, roomFixture, screenFrames, sleep } from './lib/room.mjs';

const SHOTS = process.env.ROOMCAST_SCREENSHOT_DIR ?? join(REPO, 'docs', 'screenshots');
const LIVE_TIMEOUT_MS = Number(process.env.ROOMCAST_LIVE_TIMEOUT_MS ?? 45000);
/** Per test: a hung gateway or browser fails the test instead of hanging CI. */
const TEST_TIMEOUT_MS = Number(process.env.ROOMCAST_TEST_TIMEOUT_MS ?? 240000);

const tileOf = (snap, name, testId = 'remote-tile') => snap?.tiles?.find((t) => t.name === name && t.testId === testId);

describe('room features', () => {
  // Three fake cameras, so the device switch has somewhere to go. (Chromium's fake_device_1
  // delivers Y16 depth frames, which WebRTC does not encode; fake_device_2 is MJPEG.)
  const fx = roomFixture('features', { chromiumArgs: ['--use-fake-device-for-media-stream=device-count=3'] });
  const done = new Set();
  const needs = (t, step) => {
    if (!done.has(step)) {
      t.skip(`needs "${step}"`);
      return false;
    }
    return true;
  };

  before(
    async () => {
      mkdirSync(SHOTS, { recursive: true });
      await fx.setup();
    },
    { timeout: TEST_TIMEOUT_MS },
  );
  after(() => fx.teardown());

  it('joins by link through the lobby (preview, device pickers, quality preset)', { timeout: TEST_TIMEOUT_MS }, async () => {
    const ada = await fx.open('Ada');
    const { page } = ada;
    await page.goto(fx.roomUrl());
    await page.getByTestId('lobby').waitFor({ timeout: 10000 });
    // The preview plays and the device lists are filled once permission is there.
    await page.waitForFunction(() => (document.querySelector('video[aria-label="Your camera preview"]')?.readyState ?? 0) >= 2, null, { timeout: 15000 });
    await page.waitForFunction(() => document.querySelectorAll('#lobby-camera option').length >= 3, null, { timeout: 10000 });
    await page.getByLabel('Video quality').selectOption('low');
    await page.waitForFunction(() => (document.querySelector('video[aria-label="Your camera preview"]')?.videoWidth ?? 0) === 320, null, { timeout: 10000 });
    await page.getByLabel('Your name').fill('Ada');
    await sleep(500); // the level meter moves
    await page.screenshot({ path: join(SHOTS, 'lobby.png') });
    await page.getByRole('button', { name: 'Join now' }).click();
    await page.waitForFunction(() => window.__roomcast?.state.phase === 'joined', null, { timeout: 15000 });
    const s = await fx.snapshots(['Ada']);
    assert.equal(s.Ada.selfName, 'Ada');
    await fx.waitFor('Ada publishes 320×180', ['Ada'], (s) => s.Ada.outbound.some((o) => o.kind === 'video' && o.frameWidth === 320), (s) => JSON.stringify(s.Ada.outbound));
    done.add('lobby');
  });

  it('three participants see each other', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    if (!needs(t, 'lobby')) return;
    await fx.joinAs('Ben');
    await fx.joinAs('Cleo');
    const names = ['Ada', 'Ben', 'Cleo'];
    const pairs = names.flatMap((v) => names.filter((o) => o !== v).map((o) => [v, o]));
    await fx.waitFor(
      'Ada, Ben and Cleo decode each other',
      names,
      (s) => pairs.every(([v, o]) => frames(s, v, o) > 0),
      (s) => pairs.map(([v, o]) => `${v}←${o} ${frames(s, v, o)}`).join(', '),
    );
    done.add('three');
  });

  it("mute and camera off show on the others' tiles", { timeout: TEST_TIMEOUT_MS }, async (t) => {
    if (!needs(t, 'three')) return;
    const ada = fx.byLabel('Ada').page;
    await ada.getByRole('button', { name: 'Mute', exact: true }).click();
    await fx.waitFor(
      "Ada's tile shows muted on Ben and Cleo",
      ['Ben', 'Cleo'],
      (s) => tileOf(s.Ben, 'Ada')?.mutedIcon && tileOf(s.Cleo, 'Ada')?.mutedIcon,
      (s) => `Ben: ${JSON.stringify(tileOf(s.Ben, 'Ada'))}, Cleo: ${JSON.stringify(tileOf(s.Cleo, 'Ada'))}`,
      10000,
    );
    await ada.getByRole('button', { name: 'Unmute', exact: true }).click();
    await fx.waitFor(
      "Ada's muted icon goes away",
      ['Ben', 'Cleo'],
      (s) => tileOf(s.Ben, 'Ada')?.mutedIcon === false && tileOf(s.Cleo, 'Ada')?.mutedIcon === false,
      (s) => `Ben: ${JSON.stringify(tileOf(s.Ben, 'Ada'))}`,
      10000,
    );
    await ada.getByRole('button', { name: 'Stop camera' }).click();
    await fx.waitFor('Ben sees Ada camera off', ['Ben'], (s) => tileOf(s.Ben, 'Ada')?.videoMuted, (s) => JSON.stringify(tileOf(s.Ben, 'Ada')), 10000);
    const off = await fx.snapshots(['Ben']);
    await ada.getByRole('button', { name: 'Start camera' }).click();
    await fx.waitFor(
      "Ada's camera is back on Ben's page",
      ['Ben'],
      (s) => tileOf(s.Ben, 'Ada')?.videoMuted === false && frames(s, 'Ben', 'Ada') > frames(off, 'Ben', 'Ada') + 10,
      (s) => `tile ${JSON.stringify(tileOf(s.Ben, 'Ada'))}; frames ${frames(off, 'Ben', 'Ada')} → ${frames(s, 'Ben', 'Ada')}`,
    );
    done.add('mute');
  });

  it('chat messages and reactions arrive', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    if (!needs(t, 'three')) return;
    const ben = fx.byLabel('Ben').page;
    await ben.getByRole('button', { name: /^Chat/ }).click();
    await ben.getByLabel('Message').fill('Hello from Ben! Can everyone hear me?');
    await ben.getByLabel('Message').press('Enter');
    const s = await fx.waitFor(
      'Ada and Cleo get the chat message',
      ['Ada', 'Cleo', 'Ben'],
      (s) => ['Ada', 'Cleo', 'Ben'].every((l) => s[l].chat.includes('Ben: Hello from Ben! Can everyone hear me?')),
      (s) => `Ada ${JSON.stringify(s.Ada.chat)}, Cleo ${JSON.stringify(s.Cleo.chat)}`,
      10000,
    );
    assert.equal(s.Ada.chat.length, 1);
    // Unread badge on a closed chat.
    await fx.byLabel('Ada').page.getByTestId('unread').filter({ hasText: '1' }).waitFor({ timeout: 10000 });
    // A reaction shows for 4 s only: Ada's page records every reaction it has shown (polled in
    // the page every 50 ms), so a descheduled test process cannot miss it.
    await fx.byLabel('Ada').page.evaluate(() => {
      const seen = (window.__seenReactions = []);
      window.setInterval(() => {
        const s = window.__roomcast?.state;
        for (const r of s?.reactions ?? []) {
          const line = `${s.participants.find((p) => p.id === r.participantId)?.name ?? r.participantId} ${r.emoji}`;
          if (!seen.includes(line)) seen.push(line);
        }
      }, 50);
    });
    const cleo = fx.byLabel('Cleo').page;
    await cleo.getByRole('button', { name: 'React' }).click();
    await cleo.getByRole('button', { name: 'React with 👏' }).click();
    await fx.byLabel('Ada').page
      .waitForFunction(() => window.__seenReactions.includes('Cleo 👏'), null, { timeout: 15000 })
      .catch(async () => {
        const seen = await fx.byLabel('Ada').page.evaluate(() => window.__seenReactions).catch((e) => e.message);
        console.error(await fx.diagnostics('Ada does not see Cleo clap'));
        assert.fail(`Ada sees Cleo clap within 15 s: reactions seen ${JSON.stringify(seen)} (diagnostics above)`);
      });
    await ben.getByRole('button', { name: 'Close chat' }).click();
    done.add('chat');
  });

  it('a screen share appears on the others and goes away when it stops', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    if (!needs(t, 'three')) return;
    const ada = fx.byLabel('Ada').page;
    await ada.getByRole('button', { name: 'Share screen' }).click();
    const s = await fx.waitFor(
      "Ben and Cleo decode Ada's screen in its own tile",
      ['Ben', 'Cleo'],
      (s) => s.Ben.screenTileNames.includes('Ada') && s.Cleo.screenTileNames.includes('Ada') && screenFrames(s, 'Ben', 'Ada') > 0 && screenFrames(s, 'Cleo', 'Ada') > 0,
      (s) => `screen tiles Ben ${JSON.stringify(s.Ben.screenTileNames)}, Cleo ${JSON.stringify(s.Cleo.screenTileNames)}; frames Ben ${screenFrames(s, 'Ben', 'Ada')}, Cleo ${screenFrames(s, 'Cleo', 'Ada')}`,
    );
    assert.deepEqual(s.Ben.remoteTileNames.filter((n) => n === 'Ada'), ['Ada'], 'the camera tile stays');
    // Sender parameters: the preset's bitrate cap; camera balanced, screen keeps its resolution.
    const params = await ada.evaluate(() =>
      window.__roomcast.publishPc
        .getSenders()
        .filter((x) => x.track?.kind === 'video')
        .map((x) => ({ label: x.track.label, maxBitrate: x.getParameters().encodings[0]?.maxBitrate, pref: x.getParameters().degradationPreference })),
    );
    const cam = params.find((x) => x.label.startsWith('fake_device'));
    const scr = params.find((x) => !x.label.startsWith('fake_device'));
    assert.equal(cam?.maxBitrate, 200000, `camera sender: ${JSON.stringify(params)}`);
    assert.equal(scr?.maxBitrate, 1200000, `screen sender: ${JSON.stringify(params)}`);
    if (cam?.pref !== undefined) assert.equal(cam.pref, 'balanced');
    if (scr?.pref !== undefined) assert.equal(scr.pref, 'maintain-resolution');
    await fx.screenshots('-screen-share');
    await ada.getByRole('button', { name: 'Stop sharing' }).click();
    const before = await fx.snapshots(['Ben']);
    await fx.waitFor(
      'the screen tile goes away; the camera keeps going',
      ['Ben', 'Cleo'],
      (s) => s.Ben.screenTileNames.length === 0 && s.Cleo.screenTileNames.length === 0 && frames(s, 'Ben', 'Ada') > frames(before, 'Ben', 'Ada'),
      (s) => `screen tiles Ben ${JSON.stringify(s.Ben.screenTileNames)}, Cleo ${JSON.stringify(s.Cleo.screenTileNames)}`,
      15000,
    );
    done.add('screen');
  });

  it('switching the camera and microphone mid-call keeps the call', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    if (!needs(t, 'three')) return;
    const ben = fx.byLabel('Ben').page;
    /** What Ben sends: per kind, the track's label and the deviceId it was opened with. */
    const senders = () =>
      ben.evaluate(() =>
        Object.fromEntries(
          window.__roomcast.publishPc
            .getSenders()
            .filter((s) => s.track)
            .map((s) => [s.track.kind, { label: s.track.label, deviceId: s.track.getSettings().deviceId }]),
        ),
      );
    const sendersBefore = await senders();
    await ben.getByRole('button', { name: 'Settings' }).click();
    const camera = ben.getByLabel('Camera', { exact: true });
    const mic = ben.getByLabel('Microphone', { exact: true });
    // The lists are re-read when the local stream changes; until Chromium exposes device labels
    // again (e.g. right after the camera was turned off and on) they show "Camera 1…" /
    // "Microphone 1…", so wait for the real labels in both before picking.
    await ben
      .waitForFunction(
        () => {
          const opts = (sel) => [...document.querySelectorAll(`${sel} option`)];
          const real = (list, generic) => list.length > 0 && list.every((o) => o.value && !generic.test(o.textContent ?? ''));
          return (
            opts('#call-camera').some((o) => o.textContent === 'fake_device_2') &&
            real(opts('#call-camera'), /^Camera \d+$/) &&
            real(opts('#call-mic'), /^Microphone \d+$/)
          );
        },
        null,
        { timeout: 15000 },
      )
      .catch(async () => {
        const lists = await ben.evaluate(() => ['#call-camera', '#call-mic'].map((sel) => [...document.querySelectorAll(`${sel} option`)].map((o) => `${o.value.slice(0, 8)}:${o.textContent}`)));
        assert.fail(`the device lists never showed real labels in 15 s: ${JSON.stringify(lists)}`);
      });
    const optionsOf = async (select) => select.locator('option').evaluateAll((os) => os.map((o) => ({ value: o.value, label: o.textContent ?? '' })));
    const cameras = await optionsOf(camera);
    const mics = await optionsOf(mic);
    const other = cameras.find((o) => o.label === 'fake_device_2' && o.value !== sendersBefore.video?.deviceId) ?? cameras.find((o) => o.value !== sendersBefore.video?.deviceId && o.label !== sendersBefore.video?.label);
    assert.ok(other, `a second camera to switch to: ${JSON.stringify(cameras)} (sending ${JSON.stringify(sendersBefore.video)})`);
    const otherMic = mics.find((o) => o.value !== sendersBefore.audio?.deviceId && o.label !== sendersBefore.audio?.label);
    const before = await fx.snapshots(['Ada']);
    await camera.selectOption({ value: other.value });
    if (otherMic) await mic.selectOption({ value: otherMic.value });
    /** Ben's sender of `kind` has a track opened on `deviceId`. */
    const sending = (kind, deviceId) =>
      ben
        .waitForFunction(
          ([k, id]) => window.__roomcast.publishPc.getSenders().some((s) => s.track?.kind === k && s.track.getSettings().deviceId === id),
          [kind, deviceId],
          { timeout: 15000 },
        )
        .catch(async () => assert.fail(`Ben's ${kind} sender is not on ${deviceId} after 15 s: ${JSON.stringify(await senders())}`));
    await sending('video', other.value);
    if (otherMic) await sending('audio', otherMic.value);
    const sendersAfter = await senders();
    await fx.waitFor(
      "Ada keeps decoding Ben's video after the switch",
      ['Ada', 'Ben'],
      (s) => frames(s, 'Ada', 'Ben') > frames(before, 'Ada', 'Ben') + 30 && s.Ben.phase === 'joined',
      (s) => `Ada←Ben frames ${frames(before, 'Ada', 'Ben')} → ${frames(s, 'Ada', 'Ben')}`,
    );
    console.log(
      `device switch: camera ${sendersBefore.video?.label} → ${sendersAfter.video?.label}, microphone ${sendersBefore.audio?.label} → ${sendersAfter.audio?.label}` +
        `${otherMic ? '' : ' (no second microphone listed)'}; no renegotiation, the call went on`,
    );
    assert.equal(sendersAfter.video?.deviceId, other.value);
    assert.equal(sendersAfter.video?.label, other.label);
    if (otherMic) assert.equal(sendersAfter.audio?.deviceId, otherMic.value);
    await ben.getByRole('button', { name: 'Close settings' }).click();
    done.add('switch');
  });

  it('four participants: everyone sees everyone (screenshot of the room)', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    if (!needs(t, 'three')) return;
    await fx.joinAs('Dev');
    const names = ['Ada', 'Ben', 'Cleo', 'Dev'];
    await fx.waitFor(
      'Dev and the others decode each other',
      names,
      (s) => ['Ada', 'Ben', 'Cleo'].every((o) => frames(s, 'Dev', o) > 0 && frames(s, o, 'Dev') > 0),
      (s) => ['Ada', 'Ben', 'Cleo'].map((o) => `Dev←${o} ${frames(s, 'Dev', o)}, ${o}←Dev ${frames(s, o, 'Dev')}`).join('; '),
    );
    // Someone is highlighted as the active speaker at some point (the fake microphones beep).
    await fx.waitFor('an active speaker on Ada', ['Ada'], (s) => s.Ada.live?.speaker != null, (s) => JSON.stringify(s.Ada.live), 20000);
    // Quality indicators have measured something by now.
    await fx.waitFor('quality known on Ada', ['Ada'], (s) => s.Ada.tiles.filter((x) => x.testId === 'remote-tile').every((x) => x.quality !== 'unknown'), (s) => JSON.stringify(s.Ada.tiles), 20000);
    done.add('four');
  });

  it('go live from the room; the watch page plays; stop', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    if (!needs(t, 'three')) return;
    const ada = fx.byLabel('Ada').page;
    await ada.getByRole('button', { name: 'Go live' }).click();
    const labels = fx.pages.map((p) => p.label);
    await fx.waitFor(
      'everyone in the room sees the broadcast live',
      labels,
      (s) => labels.every((l) => s[l].broadcast === 'live'),
      (s) => labels.map((l) => `${l}: ${s[l].broadcast}`).join(', '),
      LIVE_TIMEOUT_MS,
    );
    if (done.has('four')) {
      // The room as the docs show it: four people, one muted, chat open, live.
      await ada.getByRole('button', { name: 'Mute', exact: true }).click();
      await fx.byLabel('Ben').page.getByRole('button', { name: /^Chat/ }).click();
      await fx.waitFor('Ben shows Ada muted', ['Ben'], (s) => tileOf(s.Ben, 'Ada')?.mutedIcon, (s) => JSON.stringify(tileOf(s.Ben, 'Ada')), 15000);
      await sleep(600);
      await fx.byLabel('Ben').page.screenshot({ path: join(SHOTS, 'room.png') });
    }
    const viewer = await fx.open('viewer', { viewport: { width: 1000, height: 680 } });
    await viewer.page.goto(`${fx.gw.url}/watch/${encodeURIComponent(fx.roomId)}`);
    const deadline = Date.now() + LIVE_TIMEOUT_MS;
    let st = null;
    let first = null;
    while (Date.now() < deadline) {
      st = await viewer.page.evaluate(() => ({
        status: window.__watch?.state.status,
        t: window.__watch?.video.currentTime ?? 0,
        latency: window.__watch?.state.latency,
        delay: window.__watch?.state.delay,
      }));
      if (st.status === 'live') {
        first ??= st.t;
        if (st.t > first + 2) break;
      }
      await sleep(400);
    }
    if (!(st?.status === 'live' && st.t > (first ?? Infinity) + 2)) {
      console.error(await fx.diagnostics('the watch page did not play'));
      assert.fail(`watch page: ${JSON.stringify(st)}`);
    }
    await viewer.page.getByTestId('latency').waitFor({ timeout: 10000 });
    await viewer.page.screenshot({ path: join(SHOTS, 'watch.png') });
    console.log(`watch page: live, ${st.latency?.toFixed?.(2) ?? '?'} s behind the live edge, ${st.delay?.toFixed?.(2) ?? '?'} s behind real time (program date time)`);
    // Unmute and full screen work from the player's controls.
    await viewer.page.getByRole('button', { name: 'Unmute' }).click();
    await viewer.page.waitForFunction(() => window.__watch.video.muted === false, null, { timeout: 10000 });
    await viewer.page.getByRole('button', { name: 'Full screen' }).click();
    await viewer.page.waitForFunction(() => document.fullscreenElement?.classList.contains('player'), null, { timeout: 10000 });
    await viewer.page.getByRole('button', { name: 'Exit full screen' }).click();
    await ada.getByRole('button', { name: 'Stop broadcast' }).click();
    await fx.waitFor('the broadcast stopped', ['Ada', 'Ben'], (s) => s.Ada.broadcast === 'stopped' && s.Ben.broadcast === 'stopped', (s) => `${s.Ada.broadcast}, ${s.Ben.broadcast}`, 15000);
    await viewer.page.waitForFunction(() => window.__watch?.state.status === 'offline', null, { timeout: 30000 });
  });
});
