// Jest runs the TypeScript sources directly through ts-jest; the addon is the
// node-gyp build in build/Release. Integration suites (network namespaces,
// scapy, tshark) live in test/integration and run as root in CI.
/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: { '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.json' }] },
  testTimeout: 60000,
};
