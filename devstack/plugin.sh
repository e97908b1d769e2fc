#!/bin/bash
# devstack plugin for pyct (devstack/README.md). Phases:
#   stack pre-install  distro packages the container driver needs
#   stack install      pyct itself (setup_develop), host sysctls
#   stack post-config  pyct.conf (database, transport_url, [keystone_authtoken]),
#                      pyct's service user and its catalog entries, db sync
#   stack extra        demo image and flavors; pyct-api and pyct-compute
#   stack test-config  tempest's compute options that match pyct's features
#   unstack            stop pyct-api and pyct-compute
#   clean              remove pyct's state and configuration
# With PYCT_MODE=nova-driver (devstack/settings) on a host running n-cpu:
#   stack pre-install  the same packages
#   stack install      pyct (setup_develop) beside Nova; pyct-nova-shim install
#   stack post-config  nova-cpu.conf: compute_driver = pyct.PyctDriver, [pyct]
#   stack extra        n-cpu restarted as root (pyct's driver needs it)
#   clean              pyct's state; pyct-nova-shim remove

function pyct_auth_strategy {
    if [[ -n "$PYCT_AUTH_STRATEGY" ]]; then
        echo $PYCT_AUTH_STRATEGY
    elif is_service_enabled keystone; then
        echo keystone
    else
        echo noauth
    fi
}

function pyct_service_url {
    echo "$PYCT_SERVICE_PROTOCOL://$PYCT_SERVICE_HOST:$PYCT_API_PORT"
}

function install_pyct_packages {
    install_package busybox-static e2fsprogs util-linux nftables \
        python3-nftables
}

function install_pyct {
    setup_develop $PYCT_DIR
    # shared kernel pools sized so each guest's own limits bind first
    sudo install -m 644 $PYCT_DIR/etc/sysctl.d/60-pyct.conf /etc/sysctl.d/
    sudo sysctl -q -p /etc/sysctl.d/60-pyct.conf
}

function configure_pyct {
    sudo install -d -o $STACK_USER $PYCT_CONF_DIR
    sudo install -d -o root -m 700 $PYCT_STATE_PATH
    iniset $PYCT_CONF DEFAULT host $(hostname)
    iniset $PYCT_CONF DEFAULT state_path $PYCT_STATE_PATH
    iniset $PYCT_CONF DEFAULT virt_driver $PYCT_VIRT_DRIVER
    iniset $PYCT_CONF DEFAULT transport_url $(get_transport_url)
    iniset $PYCT_CONF DEFAULT debug $ENABLE_DEBUG_LOG_LEVEL
    iniset $PYCT_CONF api listen $PYCT_API_HOST
    iniset $PYCT_CONF api port $PYCT_API_PORT
    iniset $PYCT_CONF api public_endpoint $(pyct_service_url)
    iniset $PYCT_CONF database connection $(database_connection_url pyct)
    local strategy
    strategy=$(pyct_auth_strategy)
    iniset $PYCT_CONF api auth_strategy $strategy
    if [[ "$strategy" == "keystone" ]]; then
        configure_keystone_authtoken_middleware $PYCT_CONF $PYCT_SERVICE_USER
    else
        cp $PYCT_DIR/etc/pyct/clouds.yaml $PYCT_CONF_DIR/clouds.yaml
    fi
}

# Register pyct's Glance or Neutron subset ($1: image|network, $2: name,
# $3: path) unless devstack runs the real service ($4, $5: its names) or
# PYCT_REGISTER_* ($6) says otherwise.
function pyct_register_subset {
    local kind=$1 name=$2 path=$3 real1=$4 real2=$5 mode=$6
    if [[ "$mode" == "False" ]]; then
        return
    fi
    if [[ "$mode" == "auto" ]] && is_service_enabled $real1 $real2; then
        return
    fi
    get_or_create_service "$name" "$kind" "$kind service subset of pyct"
    local url
    url=$(pyct_service_url)$path
    get_or_create_endpoint "$kind" "$REGION_NAME" "$url" "$url" "$url"
}

function create_pyct_accounts {
    create_service_user $PYCT_SERVICE_USER
    get_or_create_role reader
    get_or_create_role member
    get_or_create_service "pyct" "compute" "Compute service (pyct)"
    local url
    url=$(pyct_service_url)/v2.1
    get_or_create_endpoint "compute" "$REGION_NAME" "$url" "$url" "$url"
    pyct_register_subset image pyct-image /image g-api glance \
        $PYCT_REGISTER_IMAGE
    pyct_register_subset network pyct-network /networking q-svc neutron-api \
        $PYCT_REGISTER_NETWORK
}

function init_pyct {
    recreate_database pyct
    $PYCT_BIN_DIR/pyct-manage --config-file $PYCT_CONF db sync
}

function init_pyct_demo {
    sudo $PYCT_BIN_DIR/pyct-manage --config-file $PYCT_CONF \
        image create-busybox $PYCT_DEMO_IMAGE --if-missing
    $PYCT_BIN_DIR/pyct-manage --config-file $PYCT_CONF flavor create \
        m1.tiny --id 1 --vcpus 1 --ram 512 --disk 1 --if-missing
    $PYCT_BIN_DIR/pyct-manage --config-file $PYCT_CONF flavor create \
        m1.small --id 2 --vcpus 1 --ram 2048 --disk 20 --if-missing
}

function start_pyct {
    run_process pyct-api "$PYCT_BIN_DIR/pyct-api --config-file $PYCT_CONF"
    # the container driver needs root: namespaces, cgroups, mounts
    run_process pyct-compute "$PYCT_BIN_DIR/pyct-compute --config-file $PYCT_CONF" root root
    # guests' serial consoles (openstack console url show --serial)
    if is_service_enabled pyct-serialproxy; then
        run_process pyct-serialproxy "$PYCT_BIN_DIR/pyct-serialproxy --config-file $PYCT_CONF"
    fi
}

function stop_pyct {
    stop_process pyct-api
    stop_process pyct-compute
    if is_service_enabled pyct-serialproxy; then
        stop_process pyct-serialproxy
    fi
}

# tempest runs only what pyct does: no migration, snapshots, shelve or
# remote consoles yet
function configure_tempest_for_pyct {
    local max
    max=$($PYTHON -c "from pyct_driver.api import microversion as m; print('%d.%d' % m.MAX_VERSION)")
    iniset $TEMPEST_CONFIG compute min_microversion 2.1
    iniset $TEMPEST_CONFIG compute max_microversion $max
    iniset $TEMPEST_CONFIG compute-feature-enabled console_output True
    iniset $TEMPEST_CONFIG compute-feature-enabled pause True
    iniset $TEMPEST_CONFIG compute-feature-enabled interface_attach True
    iniset $TEMPEST_CONFIG compute-feature-enabled config_drive True
    iniset $TEMPEST_CONFIG compute-feature-enabled metadata_service True
    iniset $TEMPEST_CONFIG compute-feature-enabled resize True
    iniset $TEMPEST_CONFIG compute-feature-enabled change_password True
    iniset $TEMPEST_CONFIG compute-feature-enabled suspend True
    iniset $TEMPEST_CONFIG compute-feature-enabled rescue True
    local feature
    for feature in cold_migration live_migration \
            block_migration_for_live_migration live_migrate_back_and_forth \
            snapshot shelve shelve_migrate stable_rescue \
            enable_instance_password personality \
            vnc_console spice_console serial_console \
            attach_encrypted_volume swap_volume volume_multiattach \
            volume_backed_live_migration disk_config; do
        iniset $TEMPEST_CONFIG compute-feature-enabled $feature False
    done
    iniset $TEMPEST_CONFIG service_available nova True
}

# the database goes with devstack's own clean (it removes the server)
function clean_pyct {
    sudo rm -rf $PYCT_STATE_PATH $PYCT_CONF_DIR
}

function install_pyct_nova {
    install_pyct
    $PYCT_BIN_DIR/pyct-nova-shim install
}

function configure_pyct_nova {
    sudo install -d -o root -m 700 $PYCT_STATE_PATH
    iniset $NOVA_CPU_CONF DEFAULT compute_driver pyct.PyctDriver
    iniset $NOVA_CPU_CONF pyct state_path $PYCT_STATE_PATH
}

# devstack starts n-cpu as the stack user; guests need namespaces, cgroups
# and mounts, so pyct's compute runs as root
function start_pyct_nova_compute {
    stop_process n-cpu
    run_process n-cpu "$PYCT_BIN_DIR/nova-compute --config-file $NOVA_CPU_CONF" root root
}

function clean_pyct_nova {
    $PYCT_BIN_DIR/pyct-nova-shim remove
    sudo rm -rf $PYCT_STATE_PATH
}

PYCT_BIN_DIR=$(get_python_exec_prefix)

if [[ "$PYCT_MODE" == "nova-driver" ]] && is_service_enabled n-cpu; then
    if [[ "$1" == "stack" && "$2" == "pre-install" ]]; then
        install_pyct_packages
    elif [[ "$1" == "stack" && "$2" == "install" ]]; then
        install_pyct_nova
    elif [[ "$1" == "stack" && "$2" == "post-config" ]]; then
        configure_pyct_nova
    elif [[ "$1" == "stack" && "$2" == "extra" ]]; then
        start_pyct_nova_compute
    fi
    if [[ "$1" == "clean" ]]; then
        clean_pyct_nova
    fi
elif [[ "$PYCT_MODE" == "api" ]] && is_service_enabled pyct-api pyct-compute; then
    if [[ "$1" == "stack" && "$2" == "pre-install" ]]; then
        install_pyct_packages
    elif [[ "$1" == "stack" && "$2" == "install" ]]; then
        install_pyct
    elif [[ "$1" == "stack" && "$2" == "post-config" ]]; then
        configure_pyct
        if [[ "$(pyct_auth_strategy)" == "keystone" ]]; then
            create_pyct_accounts
        fi
        init_pyct
    elif [[ "$1" == "stack" && "$2" == "extra" ]]; then
        init_pyct_demo
        start_pyct
    elif [[ "$1" == "stack" && "$2" == "test-config" ]]; then
        if is_service_enabled tempest; then
            configure_tempest_for_pyct
        fi
    fi
    if [[ "$1" == "unstack" ]]; then
        stop_pyct
    fi
    if [[ "$1" == "clean" ]]; then
        clean_pyct
    fi
fi
