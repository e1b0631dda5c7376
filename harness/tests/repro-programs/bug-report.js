'use strict';
function validate(order) {
  if (order.total < 0) {
    process.abort();
  }
  return order;
}
function checkout(orders) {
  return orders.map((o) => validate(o));
}
checkout([{ total: 3 }, { total: -1 }]);
