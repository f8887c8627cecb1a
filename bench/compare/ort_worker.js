// ONNX Runtime side of bench/compare (README.md here), with onnxruntime-node
// from npm (bench/compare/node_modules).
//
//   node ort_worker.js MODEL.onnx X.npy [SALT.npy] [--threads T]
//
// Same protocol as salted_worker.cpp: prints `ready {json}`, then reads
//   run N        N timed runs (await session.run(feeds)); prints `times t1 ... tN` (ms)
//   output PATH  writes the last output as .npy; prints `ok`
//   quit         (or end of input) exits 0
// Failures print `error: <one line>`; a failure before `ready` exits 1.
// Session options per /work/shared/BENCHMARKING.md: intraOpNumThreads T,
// interOpNumThreads 1, graph optimisation 'all', no spinning.
'use strict';

const fs = require('fs');
const path = require('path');
const readline = require('readline');

function oneLine(e) {
  const s = e && e.message ? e.message : String(e);
  return s.replace(/[\r\n]+/g, ' ');
}

function failStart(msg) {
  process.stdout.write(`error: ${oneLine(msg)}\n`, () => process.exit(1));
}

// Minimal .npy reader: little-endian float32, C order (what the exporter writes).
function readNpy(file) {
  const buf = fs.readFileSync(file);
  if (buf.length < 10 || buf.toString('latin1', 0, 6) !== '\x93NUMPY') throw new Error(`${file}: not a .npy file`);
  const major = buf[6];
  const hlen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const hstart = major === 1 ? 10 : 12;
  if (hstart + hlen > buf.length) throw new Error(`${file}: truncated header`);
  const header = buf.toString('latin1', hstart, hstart + hlen);
  const descr = /'descr':\s*'([^']*)'/.exec(header);
  const fortran = /'fortran_order':\s*(True|False)/.exec(header);
  const shape = /'shape':\s*\(([^)]*)\)/.exec(header);
  if (!descr || descr[1] !== '<f4') throw new Error(`${file}: expected dtype <f4, found ${descr ? descr[1] : '?'}`);
  if (!fortran || fortran[1] !== 'False') throw new Error(`${file}: expected C order`);
  if (!shape) throw new Error(`${file}: no shape in header`);
  const dims = shape[1].split(',').map((s) => s.trim()).filter((s) => s.length).map(Number);
  const n = dims.reduce((a, b) => a * b, 1);
  const off = hstart + hlen;
  if (off + 4 * n > buf.length) throw new Error(`${file}: expected ${n} floats, file is truncated`);
  const data = new Float32Array(buf.buffer.slice(buf.byteOffset + off, buf.byteOffset + off + 4 * n));
  return { data, dims };
}

function writeNpy(file, data, dims) {
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${dims.join(', ')}${dims.length === 1 ? ',' : ''}), }`;
  const total = 10 + header.length + 1;
  header += ' '.repeat((64 - (total % 64)) % 64) + '\n';
  const head = Buffer.alloc(10);
  head.write('\x93NUMPY', 0, 'latin1');
  head[6] = 1;
  head[7] = 0;
  head.writeUInt16LE(header.length, 8);
  const body = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  fs.writeFileSync(file, Buffer.concat([head, Buffer.from(header, 'latin1'), body]));
}

async function main() {
  const pos = [];
  let threads = 1;
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; ++i) {
    if (argv[i] === '--threads') {
      const t = Number(argv[i + 1]);
      if (!Number.isInteger(t) || t < 1 || t > 1024) return failStart('--threads: expected an integer in 1..1024');
      threads = t;
      ++i;
    } else if (argv[i].startsWith('-')) {
      return failStart(`unknown option '${argv[i]}'`);
    } else {
      pos.push(argv[i]);
    }
  }
  if (pos.length < 2 || pos.length > 3) return failStart('usage: node ort_worker.js MODEL.onnx X.npy [SALT.npy] [--threads T]');

  let ort, version;
  try {
    ort = require('onnxruntime-node');
    version = require('onnxruntime-node/package.json').version;
  } catch (e) {
    return failStart(`cannot load onnxruntime-node (run bench/compare.sh, which installs it): ${oneLine(e)}`);
  }

  let session, feeds;
  const t0 = process.hrtime.bigint();
  try {
    session = await ort.InferenceSession.create(pos[0], {
      intraOpNumThreads: threads,
      interOpNumThreads: 1,
      executionMode: 'sequential',
      graphOptimizationLevel: 'all',
      extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } },
    });
  } catch (e) {
    return failStart(`${pos[0]}: ${oneLine(e)}`);
  }
  const loadMs = Number(process.hrtime.bigint() - t0) / 1e6;
  try {
    const x = readNpy(pos[1]);
    const salt = pos.length === 3 ? readNpy(pos[2]) : null;
    feeds = {};
    for (const name of session.inputNames) {
      if (name === 'salt') {
        if (!salt) throw new Error(`${pos[0]}: the model is salted: pass SALT.npy`);
        feeds[name] = new ort.Tensor('float32', salt.data, salt.dims);
      } else {
        feeds[name] = new ort.Tensor('float32', x.data, x.dims);
      }
    }
    if (salt && !session.inputNames.includes('salt')) throw new Error(`${pos[0]}: the model is not salted: drop SALT.npy`);
    await session.run(feeds); // one untimed run checks the inputs
  } catch (e) {
    return failStart(e);
  }
  const outName = session.outputNames[0];
  const info = {
    engine: 'onnxruntime', version, node: process.version, threads, inter_op_threads: 1,
    graph_optimization: 'all', allow_spinning: '0', load_ms: loadMs,
    batch: feeds[session.inputNames[0]].dims[0],
  };
  process.stdout.write(`ready ${JSON.stringify(info)}\n`);

  let last = null;
  const rl = readline.createInterface({ input: process.stdin, terminal: false });
  for await (const raw of rl) {
    const line = raw.replace(/\r$/, '');
    if (line === 'quit') break;
    let reply;
    if (line.startsWith('run ')) {
      const n = Number(line.slice(4));
      if (!Number.isInteger(n) || n < 1 || n > 100000) {
        reply = `error: run: expected a count in 1..100000, found '${line.slice(4, 44)}'`;
      } else {
        const times = [];
        try {
          for (let i = 0; i < n; ++i) {
            const a = process.hrtime.bigint();
            const r = await session.run(feeds);
            const b = process.hrtime.bigint();
            last = r[outName];
            times.push((Number(b - a) / 1e6).toFixed(6));
          }
          reply = `times ${times.join(' ')}`;
        } catch (e) {
          reply = `error: run: ${oneLine(e)}`;
        }
      }
    } else if (line.startsWith('output ')) {
      try {
        if (!last) throw new Error('no output yet');
        writeNpy(line.slice(7), last.data, last.dims);
        reply = 'ok';
      } catch (e) {
        reply = `error: output: ${oneLine(e)}`;
      }
    } else {
      reply = `error: unknown command '${line.slice(0, 60)}' (expected run N, output PATH, quit)`;
    }
    process.stdout.write(reply + '\n');
  }
  process.exit(0);
}

main().catch((e) => failStart(e));
