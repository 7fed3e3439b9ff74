// The address a fleet server puts into its claim: --advertise as typed, and which claim
// addresses no client can send to (the wildcard addresses a server binds every interface with).

import { describe, expect, it } from 'vitest';
import { parseAdvertise, unusableAddress } from '../src/address.js';

describe('--advertise', () => {
  it.each([
    ['10.0.3.17:7077', { host: '10.0.3.17', port: 7077 }],
    ['ids.example.com:7077', { host: 'ids.example.com', port: 7077 }],
    ['[fd00::1]:7077', { host: 'fd00::1', port: 7077 }],
    ['10.0.3.17', { host: '10.0.3.17', port: undefined }],
    ['fd00::1', { host: 'fd00::1', port: undefined }],
    ['[fd00::1]', { host: 'fd00::1', port: undefined }],
    ['web-3.ids.svc.cluster.local', { host: 'web-3.ids.svc.cluster.local', port: undefined }],
  ])('%s', (text, parsed) => {
    expect(parseAdvertise(text)).toEqual(parsed);
  });

  it.each(['', 'a b', 'host:x', 'host:0', 'host:70000', '[]', 'bad host!:80', "''", 'under_score.example:80', '-lead.example', 'a..b'])('%j is refused, naming --advertise', (text) => {
    expect(() => parseAdvertise(text)).toThrow(/^advertise: /);
  });
});

describe('claim addresses no client can use', () => {
  it.each(['0.0.0.0:7077', '[::]:7077', '[0:0:0:0:0:0:0:0]:7077'])('%s: the wildcard address', (address) => {
    expect(unusableAddress(address)).toMatch(/wildcard address/);
  });

  it.each(['127.0.0.1:7077', '10.0.3.17:7077', '[::1]:7077', 'ids.example.com:7077'])('%s: usable', (address) => {
    expect(unusableAddress(address)).toBeUndefined();
  });
});
