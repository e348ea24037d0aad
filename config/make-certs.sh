#!/bin/sh
# Make the police-station broker's PKI and accounts:
#   a CA, a server certificate, one password per site and for the viewer, the mosquitto
#   password file, and the ACL file (copied from config/mosquitto/acl).
#
# usage: [CLIENT_CERTS=1] make-certs.sh OUTDIR SERVER_NAME SITE [SITE...]
#   OUTDIR       e.g. /etc/mosquitto/dozor (created; the CA key stays here: move it offline
#                once all certificates are made)
#   SERVER_NAME  the broker's host name or IP address, as sites will dial it
#   SITE         site ids (letters, digits, - and _): each becomes an MQTT user name
#
# Idempotent: an existing CA, server key or password is kept; run it again to add a site.
# Passwords are written to OUTDIR/credentials/<user>.password (mode 600): copy each to its
# site's recorder configuration.
set -eu

if [ $# -lt 3 ]; then
    echo "usage: $0 OUTDIR SERVER_NAME SITE [SITE...]" >&2
    exit 2
fi
out=$1
server=$2
shift 2
here=$(cd "$(dirname "$0")" && pwd)
days_ca=3650
days_server=825

umask 077
mkdir -p "$out/credentials"
cd "$out"

for site in "$@"; do
    case $site in
        viewer|*[!A-Za-z0-9_-]*|[-_]*|'')
            echo "bad site id '$site': letters, digits, - and _ only, not 'viewer'" >&2
            exit 2 ;;
    esac
done

if [ ! -f ca.key ]; then
    openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
        -keyout ca.key -out ca.crt -days "$days_ca" -subj "/CN=Dozor broker CA" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
    echo "made CA: $out/ca.crt"
fi

if [ ! -f server.crt ]; then
    case $server in
        *[!0-9.]*) san="DNS:$server,DNS:localhost,IP:127.0.0.1" ;;
        *) san="IP:$server,DNS:localhost,IP:127.0.0.1" ;;
    esac
    printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature\n' \
        "$san" > server.ext
    openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
        -keyout server.key -out server.csr -subj "/CN=$server" 2>/dev/null
    openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
        -out server.crt -days "$days_server" -extfile server.ext 2>/dev/null
    rm -f server.csr server.ext
    echo "made server certificate for $server ($san)"
fi

# Optional client certificates (CLIENT_CERTS=1): clients/<user>.crt and .key, signed by the
# CA, for BrokerSettings.cert_file/key_file (and require_certificate true on the broker).
if [ "${CLIENT_CERTS:-0}" = 1 ]; then
    mkdir -p clients
    for user in viewer "$@"; do
        [ -f "clients/$user.crt" ] && continue
        printf 'extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature\n' > client.ext
        openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
            -keyout "clients/$user.key" -out client.csr -subj "/CN=$user" 2>/dev/null
        openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
            -out "clients/$user.crt" -days "$days_server" -extfile client.ext 2>/dev/null
        rm -f client.csr client.ext
    done
    echo "made client certificates in $out/clients"
fi

# Passwords: keep existing ones, make new ones; rebuild the password file from them all.
for user in viewer "$@"; do
    if [ ! -f "credentials/$user.password" ]; then
        openssl rand -hex 24 > "credentials/$user.password"
    fi
done
rm -f passwd.new
touch passwd.new
for file in credentials/*.password; do
    user=$(basename "$file" .password)
    mosquitto_passwd -b passwd.new "$user" "$(cat "$file")"
done
mv passwd.new passwd

cp "$here/mosquitto/acl" acl
chmod 644 ca.crt server.crt acl

# Debian's mosquitto drops root privileges to user mosquitto: it must read its files.
if [ "$(id -u)" = 0 ] && id mosquitto >/dev/null 2>&1; then
    chown mosquitto: passwd acl server.key server.crt ca.crt
fi
echo "accounts: $(ls credentials | sed 's/\.password//' | tr '\n' ' ')"
