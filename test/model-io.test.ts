// model-io – loading a model.from someone else wrote: its weight paths stay
// beside its model.json (no ../, no other host), and fetches are bounded in
// size (what the manifest declares) and time.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { createServer, IncomingMessage, ServerResponse } from 'node:http';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { AddressInfo } from 'node:net';
import { initBackend } from '../core/backend/backends';
import { ModelInvalid } from '../core/errors';
import { loadModel, saveModel } from '../core/model/io';
import { tempDir } from './fixtures';

before(async () => {
  await initBackend('wasm');
});

/** A tiny model saved in a folder, with a copy of its model.json whose manifest names `path`. */
async function savedWithPath(path: string): Promise<string> {
  const model = tf.sequential({ layers: [tf.layers.dense({ name: 'd', units: 2, inputShape: [3] })] });
  const dir = join(tempDir(), 'm');
  await saveModel(model, dir);
  const json = JSON.parse(readFileSync(join(dir, 'model.json'), 'utf8'));
  json.weightsManifest[0].paths = [path];
  writeFileSync(join(dir, 'evil.json'), JSON.stringify(json));
  return dir;
}

async function serving(handler: (req: IncomingMessage, res: ServerResponse) => void, run: (base: string) => Promise<void>) {
  const server = createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    await run(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  } finally {
    server.closeAllConnections();
    server.close();
  }
}

const invalid = (what: RegExp) => (e: Error) => e instanceof ModelInvalid && what.test(e.message);

test('model-io – a local manifest naming a file outside the model\'s folder is refused', async () => {
  const dir = await savedWithPath('../../etc/passwd');
  await assert.rejects(loadModel(join(dir, 'evil.json')), invalid(/weight path '..\/..\/etc\/passwd' leaves the model's folder/));
  const abs = await savedWithPath('/etc/passwd');
  await assert.rejects(loadModel(join(abs, 'evil.json')), invalid(/leaves the model's folder/));
});

test('model-io – over http: another host, ../, an oversized or a hanging answer are refused; the honest model loads', async () => {
  for (const path of ['http://127.0.0.2:9/weights.bin', '../weights.bin', '//127.0.0.2/weights.bin']) {
    const dir = await savedWithPath(path);
    const asked: string[] = [];
    await serving((req, res) => { asked.push(req.url!); res.end(readFileSync(join(dir, req.url!.replace('/models/', '')))); }, async (base) => {
      await assert.rejects(loadModel(`${base}/models/evil.json`), invalid(/leaves the model's folder/), path);
    });
    assert.deepEqual(asked, ['/models/evil.json'], `nothing fetched for ${path}`);
  }
  const dir = await savedWithPath('weights.bin');
  await serving((req, res) => {
    if (req.url === '/endless/weights.bin') { res.write(Buffer.alloc(1 << 16)); res.write(Buffer.alloc(1 << 16)); return void res.end(); }
    if (req.url === '/slow/model.json') return; // never answers
    res.end(readFileSync(join(dir, req.url!.replace(/^\/(models|endless)\//, ''))));
  }, async (base) => {
    const model = await loadModel(`${base}/models/evil.json`);
    assert.equal(model.layers[0].name, 'd');
    await assert.rejects(loadModel(`${base}/endless/evil.json`), invalid(/more than the 32 bytes expected/));
    await assert.rejects(loadModel(`${base}/slow/model.json`, undefined, { seconds: 0.3, modelJsonBytes: 1 << 20 }), invalid(/no answer within 0.3 s/));
  });
});

test('model-io – a redirect to another origin is refused (same origin followed); a weight shape that is not whole numbers is refused', async () => {
  const dir = await savedWithPath('weights.bin');
  await serving((req, res) => {
    if (req.url === '/away/model.json') return void res.writeHead(302, { location: 'http://127.0.0.2:9/model.json' }).end();
    if (req.url === '/moved/model.json') return void res.writeHead(301, { location: '/models/evil.json' }).end();
    res.end(readFileSync(join(dir, req.url!.replace(/^\/(models|moved)\//, '')))); // weights are beside the URL asked for
  }, async (base) => {
    await assert.rejects(loadModel(`${base}/away/model.json`), invalid(/redirected to another origin \(http:\/\/127\.0\.0\.2:9\)/));
    assert.equal((await loadModel(`${base}/moved/model.json`)).layers[0].name, 'd', 'a redirect within the origin is followed');
  });
  const json = JSON.parse(readFileSync(join(dir, 'evil.json'), 'utf8'));
  json.weightsManifest[0].weights[0].shape = ['x', 2];
  writeFileSync(join(dir, 'bad-shape.json'), JSON.stringify(json));
  await assert.rejects(loadModel(join(dir, 'bad-shape.json')), invalid(/shape \["x",2\] is not a list of whole numbers/));
});
