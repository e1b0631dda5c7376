'use strict';
const crash = require('./oracle');
function score(v, i) {
  if (i === 3000000) crash();
  return (v * 31 + i) | 0;
}
function churn() {
  let acc = 0;
  for (let i = 0; i <= 3000000; i++) acc = score(acc, i);
  return acc;
}
churn();
