"""WooCommerce: connect a store, earn from its orders, redeem as coupons, identify shoppers."""
