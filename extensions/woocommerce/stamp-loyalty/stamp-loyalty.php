<?php
/**
 * Plugin Name: Stamp Loyalty
 * Description: Stamp's loyalty widget for WooCommerce: points, rewards and a rewards page.
 * Version: 0.1.0
 * Requires PHP: 7.4
 * License: MIT
 *
 * The widget calls Stamp directly. So that Stamp knows who is logged in, this plugin mints
 * a short-lived HS256 JWT for the logged-in user only (format: see stamp_customer_token()).
 * Its key is derived from the secret of Stamp's own webhooks on this store, which Stamp
 * created when the store was connected: nothing else has to be copied into WordPress.
 */

if (!defined('ABSPATH')) {
    exit;
}

const STAMP_TOKEN_AUDIENCE = 'stamp-storefront';
const STAMP_TOKEN_KEY_LABEL = 'stamp-storefront-token-v1';
const STAMP_TOKEN_TTL = 600;

/** Stamp's address, e.g. https://stamp.example.com (no trailing slash). */
function stamp_app_url()
{
    return rtrim((string) get_option('stamp_app_url', 'https://stamp.example.com'), '/');
}

function stamp_base64url($data)
{
    return rtrim(strtr(base64_encode($data), '+/', '-_'), '=');
}

/**
 * The token Stamp accepts (app/integrations/woocommerce/storefront.py):
 *   header {"alg":"HS256","typ":"JWT"}
 *   claims {"aud":"stamp-storefront","shop":<shop id>,"sub":"<user id>","email":"<email>",
 *           "iat":<now>,"exp":<now + 600>}
 *   key    hex(HMAC-SHA256(key = webhook secret, msg = "stamp-storefront-token-v1"))
 */
function stamp_customer_token($shop_id, $webhook_secret, $user_id, $email, $now)
{
    $header = array('alg' => 'HS256', 'typ' => 'JWT');
    $claims = array(
        'aud' => STAMP_TOKEN_AUDIENCE,
        'shop' => (int) $shop_id,
        'sub' => (string) $user_id,
        'email' => (string) $email,
        'iat' => (int) $now,
        'exp' => (int) $now + STAMP_TOKEN_TTL,
    );
    $signing_input = stamp_base64url(json_encode($header)) . '.' . stamp_base64url(json_encode($claims));
    $key = hash_hmac('sha256', STAMP_TOKEN_KEY_LABEL, $webhook_secret);
    return $signing_input . '.' . stamp_base64url(hash_hmac('sha256', $signing_input, $key, true));
}

/**
 * Stamp's shop id and webhook secret, read from the webhooks Stamp created on this store
 * (delivery URL {app}/webhooks/woocommerce/{shop id}); cached for an hour.
 */
function stamp_connection()
{
    $cached = get_transient('stamp_connection');
    if (is_array($cached)) {
        return $cached;
    }
    if (!class_exists('WC_Data_Store') || !function_exists('wc_get_webhook')) {
        return null;
    }
    $prefix = stamp_app_url() . '/webhooks/woocommerce/';
    $ids = WC_Data_Store::load('webhook')->search_webhooks(array('limit' => -1, 'status' => 'all'));
    foreach ($ids as $id) {
        $webhook = wc_get_webhook($id);
        if (!$webhook || strpos($webhook->get_delivery_url(), $prefix) !== 0) {
            continue;
        }
        $shop_id = substr($webhook->get_delivery_url(), strlen($prefix));
        if (!ctype_digit($shop_id) || $webhook->get_secret() === '') {
            continue;
        }
        $connection = array('shop_id' => (int) $shop_id, 'secret' => $webhook->get_secret());
        set_transient('stamp_connection', $connection, HOUR_IN_SECONDS);
        return $connection;
    }
    return null;
}

/** The loader, deferred, with the API base and (for a logged-in user) a fresh token. */
function stamp_enqueue_widget()
{
    $connection = stamp_connection();
    if ($connection === null) {
        return;
    }
    wp_enqueue_script(
        'stamp-loader',
        stamp_app_url() . '/widgets/static/stamp-loader.js',
        array(),
        '0.1.0',
        array('in_footer' => true, 'strategy' => 'defer')
    );
    $config = array(
        'apiBase' => stamp_app_url() . '/woo/api',
        'platform' => 'woocommerce',
        'customerToken' => null,
    );
    if (is_user_logged_in()) {
        $user = wp_get_current_user();
        $config['customerToken'] = stamp_customer_token(
            $connection['shop_id'],
            $connection['secret'],
            $user->ID,
            $user->user_email,
            time()
        );
    }
    wp_add_inline_script('stamp-loader', 'window.StampConfig = ' . wp_json_encode($config) . ';', 'before');
}
add_action('wp_enqueue_scripts', 'stamp_enqueue_widget');

/** [stamp_rewards]: a full rewards page; the loader renders into this element. */
function stamp_rewards_shortcode()
{
    return '<div id="stamp-rewards-page" data-stamp-page="rewards"></div>';
}
add_shortcode('stamp_rewards', 'stamp_rewards_shortcode');

function stamp_admin_menu()
{
    add_submenu_page('woocommerce', 'Stamp Loyalty', 'Stamp Loyalty', 'manage_woocommerce', 'stamp', 'stamp_settings_page');
}
add_action('admin_menu', 'stamp_admin_menu');

function stamp_register_settings()
{
    register_setting('stamp', 'stamp_app_url', array('type' => 'string', 'sanitize_callback' => 'esc_url_raw'));
}
add_action('admin_init', 'stamp_register_settings');

/** Settings: Stamp's address and the connect button (Stamp then sends you to WooCommerce). */
function stamp_settings_page()
{
    if (!current_user_can('manage_woocommerce')) {
        return;
    }
    delete_transient('stamp_connection');
    $connected = stamp_connection() !== null;
    $connect_url = add_query_arg('store_url', rawurlencode(home_url()), stamp_app_url() . '/woocommerce/connect');
    echo '<div class="wrap"><h1>Stamp Loyalty</h1>';
    echo '<form method="post" action="options.php">';
    settings_fields('stamp');
    echo '<p><label>Stamp address <input type="url" class="regular-text" name="stamp_app_url" value="' . esc_attr(stamp_app_url()) . '"></label></p>';
    submit_button('Save');
    echo '</form>';
    echo '<p>' . ($connected ? 'This store is connected to Stamp.' : 'This store is not connected yet.') . '</p>';
    echo '<p><a class="button button-primary" href="' . esc_url($connect_url) . '">' . ($connected ? 'Reconnect' : 'Connect to Stamp') . '</a></p>';
    echo '</div>';
}
