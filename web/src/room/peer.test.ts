import { describe, expect, it } from 'vitest';
import { candidateInit, localCandidateMessage, peerConfig, remoteCandidateStep } from './peer';

describe('peer connections', () => {
  it('publish bundles everything; subscribe takes what the server offers; e2ee adds its options', () => {
    const ice = [{ urls: 'stun:example.org' }];
    expect(peerConfig('publish', ice)).toEqual({ iceServers: ice, bundlePolicy: 'max-bundle', rtcpMuxPolicy: 'require' });
    expect(peerConfig('subscribe', ice).bundlePolicy).toBe('balanced');
    expect(peerConfig('subscribe', ice, { encodedInsertableStreams: true } as Partial<RTCConfiguration>)).toMatchObject({ encodedInsertableStreams: true, rtcpMuxPolicy: 'require' });
  });

  it('local candidates: the browser mid, else the first m-line; the end marker only once gathering is done', () => {
    let asked = 0;
    const firstMid = () => {
      asked += 1;
      return '0';
    };
    expect(localCandidateMessage('publish', { candidate: 'candidate:1 1 udp 1 1.2.3.4 5 typ host', sdpMid: '1' }, firstMid)).toEqual({
      type: 'candidate',
      pc: 'publish',
      candidate: 'candidate:1 1 udp 1 1.2.3.4 5 typ host',
      sdp_mid: '1',
    });
    expect(asked).toBe(0);
    expect(localCandidateMessage('subscribe', { candidate: 'candidate:2', sdpMid: null }, firstMid)).toMatchObject({ pc: 'subscribe', sdp_mid: '0' });
    // Chrome's per-generation empty candidate is not the end of gathering: nothing is sent.
    expect(localCandidateMessage('publish', { candidate: '', sdpMid: '0' }, firstMid)).toBeNull();
    expect(localCandidateMessage('publish', null, firstMid)).toEqual({ type: 'candidate', pc: 'publish', candidate: '', sdp_mid: '0' });
  });

  it('server candidates wait for the remote description; stale and empty ones are dropped', () => {
    const c = { candidate: 'candidate:1', sdp_mid: '0' };
    expect(remoteCandidateStep(c, true, false)).toBe('hold');
    expect(remoteCandidateStep(c, true, true)).toBe('add');
    expect(remoteCandidateStep(c, false, true)).toBe('ignore');
    expect(remoteCandidateStep(c, false, false)).toBe('ignore');
    expect(remoteCandidateStep({ candidate: '', sdp_mid: '0' }, true, false)).toBe('ignore');
  });

  it('a server candidate without a mid goes to the first m-line', () => {
    expect(candidateInit({ candidate: 'candidate:1', sdp_mid: '2' })).toEqual({ candidate: 'candidate:1', sdpMid: '2' });
    expect(candidateInit({ candidate: 'candidate:1', sdp_mid: null })).toEqual({ candidate: 'candidate:1', sdpMLineIndex: 0 });
  });
});
