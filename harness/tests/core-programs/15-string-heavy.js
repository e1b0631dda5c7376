'use strict';
const crash = require('./oracle');
// Long lines, unicode and a two-byte source string move columns around.
const text = 'λ'.repeat(50) + ' — naïve café — ' + 'x'.repeat(200);
function tokenize(s) { return s.split(/\s+/).filter((w) => w.length > 0); }
function shout(words) { return words.map((w) => w.toUpperCase()).join('·'); } function deep(str) { if (str.length > 10) { return [str].map((s) => { const t = s.slice(0, 5); return t.length === 5 ? crash() : t; }); } }
const result = shout(tokenize(text)); deep(result + JSON.stringify({ k: 'ünïcödé' }));
