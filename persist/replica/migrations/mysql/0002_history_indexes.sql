-- The REST bridge's order history sums each order's fills: find trades by order id.
CREATE INDEX trades_by_maker_order ON trades (maker_order_id);
CREATE INDEX trades_by_taker_order ON trades (taker_order_id);
