/**
 * Identity from certificates: exactly one well-formed dne://role/name URI SAN.
 */
import { identityFromCertificate, identityUri, parseIdentityUri, splitSubjectAltName } from '../../ts/common/identity';
import { formatValidationError } from '../../ts/common/validation';

test('round trip and parsing', () => {
  expect(identityUri({ role: 'host', name: 'h1.rack-2' })).toBe('dne://host/h1.rack-2');
  expect(parseIdentityUri('dne://host/h1.rack-2')).toEqual({ role: 'host', name: 'h1.rack-2' });
  for (const bad of ['dne://root/h1', 'dne://host/', 'dne://host/a/b', 'https://host/h1', 'dne://host/-x', 'dne://HOST/h1', `dne://host/${'a'.repeat(129)}`]) {
    expect(parseIdentityUri(bad)).toBeNull();
  }
});

test.each([
  [undefined, { ok: false, reason: 'no client certificate' }],
  [{ subjectAltName: undefined }, { ok: false, reason: 'the certificate carries no dne:// URI SAN' }],
  [{ subjectAltName: 'DNS:h1, IP Address:10.0.0.1' }, { ok: false, reason: 'the certificate carries no dne:// URI SAN' }],
  [{ subjectAltName: 'URI:https://example.com/h1' }, { ok: false, reason: 'the certificate carries no dne:// URI SAN' }],
  [{ subjectAltName: 'URI:dne://host/h1, URI:dne://admin/ops' }, { ok: false, reason: 'the certificate carries 2 dne:// URI SANs; exactly one is allowed' }],
  [{ subjectAltName: 'URI:dne://wizard/x' }, { ok: false, reason: 'the certificate\'s URI SAN "dne://wizard/x" is not dne://<role>/<name>' }],
  // node quotes a SAN that contains the separator; such a value can never pass as (or smuggle in) an identity
  [{ subjectAltName: 'URI:"dne://host/h1, URI:dne://admin/ops"' }, { ok: false, reason: 'the certificate\'s URI SAN "dne://host/h1, URI:dne://admin/ops" is not dne://<role>/<name>' }],
  [{ subjectAltName: 'URI:"dne://host/h1, DNS:x", URI:dne://host/h2' }, { ok: false, reason: 'the certificate carries 2 dne:// URI SANs; exactly one is allowed' }],
  [{ subjectAltName: 'DNS:localhost, URI:dne://controller/c1, IP Address:127.0.0.1' }, { ok: true, identity: { role: 'controller', name: 'c1' } }],
])('%j', (cert, expected) => {
  expect(identityFromCertificate(cert)).toEqual(expected);
});

test('validation messages name the field and what it must be, never the value', () => {
  expect(formatValidationError({ keyword: 'enum', instancePath: '/algorithm', params: { allowedValues: ['AES_GCM_128', 'AES_GCM_256'] } }, 'body')).toBe(
    'body/algorithm must be one of AES_GCM_128, AES_GCM_256',
  );
  expect(formatValidationError({ keyword: 'pattern', instancePath: '/x', params: { pattern: '^a$' } }, 'body', {})).toBe('body/x must be a string matching ^a$');
  expect(formatValidationError({ keyword: 'weird', instancePath: '', params: {}, message: 'is odd' }, 'body')).toBe('body is odd');
});

test('SAN strings split as node writes them', () => {
  expect(splitSubjectAltName('DNS:a, URI:"x, y", IP Address:1.2.3.4')).toEqual(['DNS:a', 'URI:x, y', 'IP Address:1.2.3.4']);
  expect(splitSubjectAltName('URI:"a\\"b"')).toEqual(['URI:a"b']);
  expect(splitSubjectAltName('')).toEqual([]);
});
