// Drives ROOST Coop's HMA client, unchanged, against hashguard's /hma API.
//
// Usage: node harness.mjs <coop checkout> <scenario.json>
//
// From the Coop checkout it compiles, with TypeScript (Coop's pinned 5.5.2 and its
// server/tsconfig.json options; types stripped, nothing rewritten):
//   server/services/hmaService/index.ts        HmaService: Coop's HMA client
//   server/services/networkingService/index.ts fetchHTTP: Coop's HTTP client (undici)
// and what they import from Coop. What this file supplies is what Coop's IoC container
// would: a no-op tracer for fetchHTTP and a Kysely stand-in for HashBankService (Coop's
// own table of bank names, kept in memory here). Every HTTP request comes from Coop's code.
//
// HMA_SERVICE_URL is set from the scenario before the module is loaded, as Coop reads it.
// Prints one JSON object: each step's result (or its error).

import { rmSync } from 'node:fs';
import { readFile, writeFile, mkdtemp } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL, fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
const ts = require('typescript');
const { trace, INVALID_SPAN_CONTEXT } = require('@opentelemetry/api');

const [coop, scenarioFile] = process.argv.slice(2);
const scenario = JSON.parse(await readFile(scenarioFile, 'utf8'));
process.env.HMA_SERVICE_URL = scenario.service_url;

// A whole program (not file by file), so that imports used only as types are dropped
// as tsc drops them (networkingService imports the type JSON, which shadows the global).
// The program holds the files the two modules load at run time; the rest of Coop's
// server (its IoC container, imported for types only) stays out, and the type errors
// that leaves do not stop the emit.
const server = path.join(coop, 'server');
const RUNTIME = [
  'services/hmaService/index.ts',
  'services/hmaService/hashBankService.ts',
  'services/hmaService/dbTypes.ts',
  'services/networkingService/index.ts',
  'services/networkingService/bodyCancellationReason.ts',
  'iocContainer/utils.ts',
  'utils/encoding.ts',
  'utils/json-schema-types.ts',
  'utils/misc.ts',
  'utils/time.ts',
  'utils/typescript-types.ts',
].map((r) => path.join(server, r));
const { config } = ts.readConfigFile(path.join(server, 'tsconfig.json'), ts.sys.readFile);
const { options: coopOptions } = ts.convertCompilerOptionsFromJson(config.compilerOptions, server);
// the output sits here, so that Coop's imports of npm packages resolve to node_modules/
const build = await mkdtemp(path.join(here, '.build-'));
process.on('exit', () => rmSync(build, { recursive: true, force: true }));
const options = {
  ...coopOptions,
  rootDir: server,
  outDir: build,
  sourceMap: false,
  noEmitOnError: false,
  typeRoots: [],
  types: [],
};
const host = ts.createCompilerHost(options);
const getSourceFile = host.getSourceFile.bind(host);
host.getSourceFile = (file, ...rest) =>
  !file.startsWith(server) || RUNTIME.includes(path.resolve(file)) ? getSourceFile(file, ...rest) : undefined;
const roots = ['services/hmaService/index.ts', 'services/networkingService/index.ts'];
const program = ts.createProgram(RUNTIME, options, host);
const emitted = program.emit();
if (emitted.emitSkipped) throw new Error('TypeScript emitted nothing');
await writeFile(path.join(build, 'package.json'), '{"type": "module"}');
const load = (r) => import(pathToFileURL(path.join(build, r.replace(/\.ts$/, '.js'))).href);
const { HmaService } = await load(roots[0]);
const { fetchHTTP } = await load(roots[1]);

const span = trace.wrapSpanContext(INVALID_SPAN_CONTEXT);
const tracer = { addActiveSpan: (_descriptor, fn) => fn(span) };
const http = (query) => fetchHTTP(tracer, query);

// Coop's public.hash_banks, in memory: the Kysely calls HashBankService makes
function memoryKysely() {
  const rows = [];
  let next = 1;
  const chain = (op, values) => {
    const wheres = [];
    let sets = {};
    const match = (row) => wheres.every(([k, v]) => row[k] === v);
    const self = {
      values: (v) => chain(op, v),
      set: (v) => ((sets = v), self),
      selectAll: () => self,
      returningAll: () => self,
      where: (k, _op, v) => (wheres.push([k, v]), self),
      execute: async () => {
        if (op === 'delete') {
          for (let i = rows.length - 1; i >= 0; i--) if (match(rows[i])) rows.splice(i, 1);
          return [];
        }
        return rows.filter(match);
      },
      executeTakeFirst: async () => rows.find(match),
      executeTakeFirstOrThrow: async () => {
        if (op === 'insert') {
          const now = new Date();
          const row = { id: next++, created_at: now, updated_at: now, ...values };
          rows.push(row);
          return row;
        }
        const row = rows.find(match);
        if (!row) throw new Error('no row');
        Object.assign(row, sets, { updated_at: new Date() });
        return row;
      },
    };
    return self;
  };
  return {
    insertInto: () => chain('insert'),
    selectFrom: () => chain('select'),
    updateTable: () => chain('update'),
    deleteFrom: () => chain('delete'),
  };
}

const hma = new HmaService(http, memoryKysely());
const org = 'org1';
const results = {};
async function step(name, fn) {
  try {
    results[name] = { ok: (await fn()) ?? null };
  } catch (error) {
    results[name] = { error: String(error && error.message ? error.message : error) };
  }
}

const image = await readFile(scenario.original);
let bank;
await step('createBank', async () => (bank = await hma.createBank(org, scenario.bank, 'benign test images', 1.0)));
await step('getBank', async () => hma.getBank(org, scenario.bank));
await step('listBanks', async () => (await hma.listBanks(org)).map((b) => b.hma_name));
await step('addContentByUpload', async () =>
  hma.addContentToBank(bank.hma_name, {
    file: new Blob([image], { type: 'image/jpeg' }),
    contentType: 'photo',
    metadata: { content_id: 'benign-1', json: { source: 'test' } },
  }),
);
await step('addContentByUrl', async () =>
  hma.addContentToBank(bank.hma_name, { url: scenario.other_url, metadata: { content_id: 'benign-2' } }),
);
await step('hashEditedFromUrl', async () => hma.hashContentFromUrl(scenario.edited_url));
// the index refreshes in the background: ask until the banked image is found
await step('checkImageMatch', async () => {
  const pdq = results.hashEditedFromUrl.ok.pdq;
  for (let i = 0; i < 200; i++) {
    const found = await hma.checkImageMatchWithDetails([bank.hma_name], 'pdq', pdq);
    if (found.matched) return found;
    await new Promise((r) => setTimeout(r, 50));
  }
  return { matched: false, matchedBanks: [] };
});
await step('lookupEditedByUrl', async () => hma.lookupContent({ url: scenario.edited_url }));
await step('getExchangeApis', async () => hma.getExchangeApis());
await step('getExchangeApiSchema', async () => hma.getExchangeApiSchema(scenario.exchange_api));
await step('getExchangeForBank', async () => hma.getExchangeForBank(scenario.exchange_bank));
await step('getExchangeForPlainBank', async () => hma.getExchangeForBank(bank.hma_name));
await step('updateBankDisabled', async () => hma.updateBank(org, String(bank.id), { enabled_ratio: 0 }));
await step('createSecondBank', async () => hma.createBank(org, 'To delete', 'gone soon', 1.0));
await step('deleteSecondBank', async () => hma.deleteBank(org, String(results.createSecondBank.ok.id)));

process.stdout.write(JSON.stringify(results));
