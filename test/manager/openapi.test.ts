/**
 * Acceptance 5: the OpenAPI document validates with a maintained validator
 * (@apidevtools/swagger-parser) and covers every registered route; Swagger
 * UI is served.
 */
import SwaggerParser from '@apidevtools/swagger-parser';
import { harness, Harness } from './helpers';

let h: Harness;
beforeAll(async () => {
  h = await harness();
});
afterAll(() => h.close());

test('the document validates and lists every route with its method', async () => {
  const r = await h.app.inject({ method: 'GET', url: '/openapi.json' });
  expect(r.statusCode).toBe(200);
  const doc = JSON.parse(r.body);
  expect(doc.openapi).toBe('3.0.3');
  await SwaggerParser.validate(structuredClone(doc));

  const documented = new Set<string>();
  for (const [p, ops] of Object.entries(doc.paths as Record<string, Record<string, unknown>>)) {
    for (const m of Object.keys(ops)) documented.add(`${m.toUpperCase()} ${p}`);
  }
  const routes = h.app.dneRoutes.filter((r) => !r.includes(' /docs'));
  expect(routes.length).toBeGreaterThanOrEqual(60);
  const missing = routes.map((r) => r.replace(/:([A-Za-z]+)/g, '{$1}')).filter((r) => !documented.has(r));
  expect(missing).toEqual([]);
  // Request bodies carry their schema (validation and the document are one definition).
  const post = doc.paths['/api/v1/network-encryption/sections/{sid}/rules'].post;
  expect(post.requestBody.content['application/json'].schema.properties.action.enum).toEqual(['ENCRYPT', 'INTEGRITY_ONLY', 'ALLOW_IN_CLEAR']);
  expect(post.requestBody.content['application/json'].schema.additionalProperties).toBe(false);
});

test('Swagger UI and the document need no credentials; the API does', async () => {
  const ui = await h.app.inject({ method: 'GET', url: '/docs/' });
  expect(ui.statusCode).toBe(200);
  expect(ui.body).toMatch(/swagger-ui/i);
  expect((await h.app.inject({ method: 'GET', url: '/openapi.json' })).statusCode).toBe(200);
  expect((await h.app.inject({ method: 'GET', url: '/api/v1/network-encryption/sections' })).statusCode).toBe(401);
});
